import type {Settings} from 'node:http2'

/**
 * HTTP/2 settings for both ends. A stream's window is what one TCP connection may have in flight
 * over the tunnel; the session's is what all of them together may. HTTP/2's defaults (64 KiB) would
 * hold a single connection far below the link's speed at any latency.
 */
export const STREAM_WINDOW = 1024 * 1024
export const SESSION_WINDOW = 16 * 1024 * 1024

export const SETTINGS: Settings = {
  initialWindowSize: STREAM_WINDOW,
  maxConcurrentStreams: 10_000,
  enablePush: false,
}

/**
 * What a session may buffer (MB) before it refuses new streams (ENHANCE_YOUR_CALM): enough for the
 * session window, whatever the number of streams (Node's default, 10, is not).
 */
export const MAX_SESSION_MEMORY = 64

/** Sets the session's own window once it can be (a session already gone has none). */
export function widenWindow(session: {destroyed: boolean; setLocalWindowSize(size: number): void}): void {
  if (!session.destroyed) session.setLocalWindowSize(SESSION_WINDOW)
}

/** A response header: the peer of an accepted connection (`address:port`). */
export const PEER_HEADER = 'x-tp-peer'
/** A request header: the port an accept waits on. */
export const PORT_HEADER = 'x-tp-port'
/** A response header: why a CONNECT failed. */
export const ERROR_HEADER = 'x-tp-error'
/** The path of an accept (a connection that arrives at the far end's listener). */
export const ACCEPT_PATH = '/accept'
/** The path that asks the far end which TCP ports processes there listen on (`?pids=1,2`). */
export const LISTENING_PATH = '/listening'

/** How often each end pings the other, and how long it waits for the answer before it calls the tunnel dead. */
export const PING_MS = 2000
export const PING_TIMEOUT_MS = 5000
