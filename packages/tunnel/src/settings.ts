import type {Settings} from 'node:http2'

/**
 * HTTP/2 settings for both ends. A stream's window is what one TCP connection may have in flight
 * over the tunnel; the session's is what all of them together may. HTTP/2's defaults (64 KiB) would
 * hold a single connection far below the link's speed at any latency.
 */
export const STREAM_WINDOW = 4 * 1024 * 1024
export const SESSION_WINDOW = 32 * 1024 * 1024

export const SETTINGS: Settings = {
  initialWindowSize: STREAM_WINDOW,
  maxConcurrentStreams: 10_000,
  enablePush: false,
}

/** A response header: the peer of an accepted connection (`address:port`). */
export const PEER_HEADER = 'x-tp-peer'
/** A request header: the port an accept waits on. */
export const PORT_HEADER = 'x-tp-port'
/** A response header: why a CONNECT failed. */
export const ERROR_HEADER = 'x-tp-error'
/** The path of an accept (a connection that arrives at the far end's listener). */
export const ACCEPT_PATH = '/accept'

/** How often each end pings the other, and how long it waits for the answer before it calls the tunnel dead. */
export const PING_MS = 2000
export const PING_TIMEOUT_MS = 5000
