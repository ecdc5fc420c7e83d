// Each TCP connection's client→server byte stream, rebuilt from captured segments: by 4-tuple, in
// sequence order, retransmitted bytes once; SYN starts a stream, FIN (once every byte before it
// came) or RST ends it. A gap that does not fill (the capture lost a packet the server got, so no
// retransmission comes) drops that stream. Pure: time comes from `now`.
import type {TcpSegment} from './pcap.js'

/** Where one connection's bytes go (a wiretap's copy). */
export interface StreamSink {
  write(chunk: Buffer): void
  /** The client ended the connection (FIN or RST) and every byte before that was written. */
  end(): void
  /** The stream cannot be rebuilt (a gap, bytes not captured): the copy goes. */
  drop(why: string): void
}

export interface ReassemblerOptions {
  /** A connection started (its SYN): where its bytes go, or undefined to let it pass uncopied. */
  open: (key: string, segment: TcpSegment) => StreamSink | undefined
  /** Bytes past a gap a stream may hold while waiting for the gap to fill (default 1 MiB). */
  maxBufferedBytes?: number
  /** How long a gap may stay open (default 3 s: retransmissions come well within it). */
  gapTimeoutMs?: number
  /** A stream with no packet for this long ends (default 10 min: its FIN was not captured). */
  idleMs?: number
  /** Streams followed at once; the oldest ends to make room (default 4096). */
  maxStreams?: number
  now?: () => number
}

interface Stream {
  sink: StreamSink
  isn: number
  /** The sequence number of the next byte to write. */
  next: number
  /** The sequence number the FIN took, once seen. */
  fin?: number
  /** Segments past a gap, waiting. */
  waiting: Array<{seq: number; data: Buffer}>
  waitingBytes: number
  gapSince?: number
  lastSeen: number
}

/** a − b in sequence space (32 bits, wrapping): negative when a comes before b. */
const seqDiff = (a: number, b: number) => (a - b) | 0
const seqAdd = (a: number, n: number) => (a + n) >>> 0

export function connectionKey(s: Pick<TcpSegment, 'src' | 'srcPort' | 'dst' | 'dstPort'>): string {
  return `${s.src} ${s.srcPort} > ${s.dst} ${s.dstPort}`
}

export class TcpReassembler {
  private readonly streams = new Map<string, Stream>()
  private readonly now: () => number
  private readonly maxBufferedBytes: number
  private readonly gapTimeoutMs: number
  private readonly idleMs: number
  private readonly maxStreams: number

  constructor(private readonly options: ReassemblerOptions) {
    this.now = options.now ?? Date.now
    this.maxBufferedBytes = options.maxBufferedBytes ?? 1 << 20
    this.gapTimeoutMs = options.gapTimeoutMs ?? 3000
    this.idleMs = options.idleMs ?? 600_000
    this.maxStreams = options.maxStreams ?? 4096
  }

  /** Streams being followed. */
  get size(): number {
    return this.streams.size
  }

  push(segment: TcpSegment): void {
    const key = connectionKey(segment)
    let stream = this.streams.get(key)
    let seq = segment.seq
    if (segment.syn) {
      // a retransmitted SYN of the stream already followed changes nothing
      if (!stream || stream.isn !== segment.seq) {
        if (stream) this.finish(key, stream)
        stream = this.start(key, segment)
        if (!stream) return
      }
      seq = seqAdd(seq, 1)
    }
    // a connection whose start was not seen (before the capture, or not copied): nothing to do
    if (!stream) return
    stream.lastSeen = this.now()
    if (segment.truncated) {
      this.drop(key, stream, 'a segment was not captured whole')
      return
    }
    if (segment.payload.length > 0) this.accept(stream, seq, segment.payload)
    if (stream.waitingBytes > this.maxBufferedBytes) {
      this.drop(key, stream, `more than ${this.maxBufferedBytes} bytes wait past a gap`)
      return
    }
    if (segment.rst) {
      // what came before the reset was sent; what is missing never comes
      this.finish(key, stream)
      return
    }
    if (segment.fin) stream.fin = seqAdd(seq, segment.payload.length)
    if (stream.fin !== undefined && stream.next === stream.fin) this.finish(key, stream)
  }

  /** Drops the streams whose gap stayed open too long and ends the idle ones; call now and then. */
  sweep(): void {
    const now = this.now()
    for (const [key, stream] of this.streams) {
      if (stream.gapSince !== undefined && now - stream.gapSince > this.gapTimeoutMs)
        this.drop(key, stream, `a gap in the capture did not fill within ${this.gapTimeoutMs} ms`)
      else if (now - stream.lastSeen > this.idleMs) this.finish(key, stream)
    }
  }

  /** Ends every stream (the capture stops). */
  close(): void {
    for (const [key, stream] of this.streams) this.finish(key, stream)
  }

  private start(key: string, segment: TcpSegment): Stream | undefined {
    const sink = this.options.open(key, segment)
    if (!sink) return undefined
    if (this.streams.size >= this.maxStreams) {
      const [oldestKey, oldest] = this.streams.entries().next().value as [string, Stream]
      this.finish(oldestKey, oldest)
    }
    const stream: Stream = {sink, isn: segment.seq, next: seqAdd(segment.seq, 1), waiting: [], waitingBytes: 0, lastSeen: this.now()}
    this.streams.set(key, stream)
    return stream
  }

  private accept(stream: Stream, seq: number, data: Buffer): void {
    const ahead = seqDiff(seq, stream.next)
    if (ahead > 0) {
      // past a gap: kept until the bytes before it come (a retransmission, or packets reordered)
      stream.waiting.push({seq, data})
      stream.waitingBytes += data.length
      stream.gapSince ??= this.now()
      return
    }
    const before = stream.next
    this.deliver(stream, seq, data)
    // what waited may follow on now
    let moved = true
    while (moved && stream.waiting.length > 0) {
      moved = false
      for (let i = 0; i < stream.waiting.length; i++) {
        const w = stream.waiting[i]
        if (seqDiff(w.seq, stream.next) > 0) continue
        stream.waiting.splice(i, 1)
        stream.waitingBytes -= w.data.length
        this.deliver(stream, w.seq, w.data)
        moved = true
        break
      }
    }
    if (stream.waiting.length === 0) stream.gapSince = undefined
    // the gap left is a new one (bytes before it came)
    else if (stream.next !== before) stream.gapSince = this.now()
  }

  /** Writes what of `data` (starting at or before `next`) was not written yet. */
  private deliver(stream: Stream, seq: number, data: Buffer): void {
    const already = -seqDiff(seq, stream.next)
    if (already >= data.length) return
    const fresh = already > 0 ? data.subarray(already) : data
    stream.next = seqAdd(stream.next, fresh.length)
    stream.sink.write(fresh)
  }

  private finish(key: string, stream: Stream): void {
    this.streams.delete(key)
    stream.sink.end()
  }

  private drop(key: string, stream: Stream, why: string): void {
    this.streams.delete(key)
    stream.sink.drop(why)
  }
}
