// A wiretap beside the kernel path: `tcpdump` captures the packets clients send to the port in the
// workload's network namespace, and each connection's client→server bytes are rebuilt here
// (reassembly.ts) and written to the handler. Clients' connections are not redirected: nothing of
// the agent's is in their way.
import {type ChildProcess, spawn} from 'node:child_process'
import {decodePacket, PcapReader} from './pcap.js'
import {type StreamSink, TcpReassembler} from './reassembly.js'

/** How often streams with a gap or without packets are looked at. */
const SWEEP_MS = 500
/** How long tcpdump may take to say it listens. */
const START_TIMEOUT_MS = 10_000

/**
 * The capture filter: TCP to the port arriving at this namespace, only the segments that matter
 * to a byte stream (SYN, FIN, RST, or with data: not the client's bare ACKs of the answers).
 */
export function captureFilter(port: number): string {
  return `inbound and tcp dst port ${port} and (tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0 or ip6 or ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) != 0)`
}

/**
 * tcpdump's arguments: every interface (the loopback's packets, the agents' own connections to the
 * app, are skipped when decoding), packet-buffered pcap on stdout, whole packets (receive offload
 * merges segments past the MTU), a 4 MiB capture buffer, and no dropping to another user (the
 * agent's image has only root).
 */
export function tcpdumpArgs(port: number): string[] {
  return ['-i', 'any', '-n', '-U', '-s', '0', '-B', '4096', '-Z', 'root', '-w', '-', captureFilter(port)]
}

export interface CaptureOptions {
  port: number
  /** A client connection started: where its bytes go, or undefined (no copy now). */
  open: (key: string) => StreamSink | undefined
  log: (message: string) => void
  /** The tcpdump to run (default `tcpdump` on PATH). */
  tcpdump?: string
  /** tcpdump ended without stop() (the copies stop; clients are not affected). */
  onExit?: (why: string) => void
}

export class Capture {
  private child?: ChildProcess
  private readonly reader = new PcapReader()
  private readonly reassembler: TcpReassembler
  private sweeper?: NodeJS.Timeout
  private stopped = false

  constructor(private readonly options: CaptureOptions) {
    this.reassembler = new TcpReassembler({open: (key) => options.open(key)})
  }

  /** Streams being followed (for tests and logs). */
  get streams(): number {
    return this.reassembler.size
  }

  /** Starts tcpdump; resolves once it captures, rejects when it cannot (not installed, no permission). */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      let started = false
      let stderr = ''
      const child = spawn(this.options.tcpdump ?? 'tcpdump', tcpdumpArgs(this.options.port), {stdio: ['ignore', 'pipe', 'pipe']})
      this.child = child
      const timer = setTimeout(() => fail(`tcpdump did not start capturing within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS)
      let failed = false
      const fail = (why: string) => {
        clearTimeout(timer)
        if (started || failed) return
        failed = true
        child.kill('SIGKILL')
        reject(new Error(why))
      }
      child.once('error', (error) => fail(`cannot run tcpdump: ${error.message}`))
      child.stderr?.setEncoding('utf8')
      let partial = ''
      child.stderr?.on('data', (text: string) => {
        const lines = (partial + text).split('\n')
        partial = lines.pop() ?? ''
        for (const line of lines) {
          if (started || failed) {
            // its statistics at the end, or a complaint
            if (line.trim()) this.options.log(`tcpdump: ${line.trim()}`)
            continue
          }
          stderr += `${line}\n`
          if (/listening on/.test(line)) {
            clearTimeout(timer)
            started = true
            resolve()
          }
        }
      })
      child.stdout?.on('data', (chunk: Buffer) => this.onData(chunk))
      child.once('exit', (code, signal) => {
        clearInterval(this.sweeper)
        this.reassembler.close()
        const why = `tcpdump exited (${signal ?? `code ${code}`})${stderr && !started ? `: ${stderr.trim()}` : ''}`
        if (!started) fail(why)
        else if (!this.stopped) {
          this.stopped = true
          this.options.onExit?.(why)
        }
      })
      this.sweeper = setInterval(() => this.reassembler.sweep(), SWEEP_MS)
      this.sweeper.unref()
    })
  }

  private onData(chunk: Buffer): void {
    if (this.stopped) return
    try {
      for (const record of this.reader.push(chunk)) {
        const segment = decodePacket(this.reader.linkType ?? -1, record)
        if (segment && segment.dstPort === this.options.port) this.reassembler.push(segment)
      }
    } catch (error) {
      this.options.log(`the capture stops: ${(error as Error).message}`)
      this.stop()
      this.options.onExit?.((error as Error).message)
    }
  }

  /** Ends tcpdump and every copy (each handler connection ends). Synchronous: for exit handlers too. */
  stop(): void {
    if (this.stopped) return
    this.stopped = true
    clearInterval(this.sweeper)
    this.child?.kill('SIGKILL')
    this.reassembler.close()
  }
}
