/**
 * HTTP/1.1 message framing (RFC 9112), as much as a proxy needs to pass messages on unchanged:
 * where a head ends, the few fields that route and frame it, and where its body ends. Strict where
 * a lenient reading could make this proxy and the server behind it disagree on where a message
 * ends (header folding, Content-Length beside Transfer-Encoding, bare LF line ends).
 */

/** A message this proxy refuses; `status` is what to answer the client (400, 431) or 502 for an upstream's. */
export class FramingError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message)
  }
}

/** Node's own default (--max-http-header-size). */
export const MAX_HEAD_BYTES = 16 * 1024
const MAX_CHUNK_LINE = 4096
const MAX_TRAILERS = 16 * 1024

export interface MessageHead {
  /** Bytes of the head, its final CRLFCRLF included. */
  length: number
  /** HTTP/1.<minor>. */
  minor: 0 | 1
  /** Field values by lower-case name, in order. */
  fields: Record<string, string[]>
  /** The tokens of Connection, lower-case. */
  connection: string[]
}

export interface RequestHead extends MessageHead {
  method: string
  target: string
}

export interface ResponseHead extends MessageHead {
  status: number
}

export type Framing = {kind: 'none'} | {kind: 'length'; length: number} | {kind: 'chunked'} | {kind: 'close'}

/**
 * The length of the head at the start of `buf` (CRLFCRLF included), or -1 while more is needed.
 * Throws a FramingError (`tooLarge`) once `limit` bytes hold no end, and 400 for bare-LF heads.
 */
export function headLength(buf: Buffer, limit = MAX_HEAD_BYTES, tooLarge = 431): number {
  const end = buf.indexOf('\r\n\r\n')
  if (end >= 0 && end + 4 <= limit) return end + 4
  if (end >= 0 || buf.length >= limit) throw new FramingError(`a message head longer than ${limit} bytes`, tooLarge)
  if (buf.indexOf('\n\n') >= 0 || buf.indexOf('\n\r\n') >= 0) throw new FramingError('a message head with bare LF line ends', tooLarge === 431 ? 400 : tooLarge)
  return -1
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.([01])$/
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: .*)?$/

/** Whether text holds a control character other than HT (never valid in a field value or a start line). */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if ((c < 32 && c !== 9) || c === 127) return true
  }
  return false
}

function parseFields(lines: string[], status: number): {fields: Record<string, string[]>; connection: string[]} {
  const fields: Record<string, string[]> = Object.create(null)
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string
    const first = line.charCodeAt(0)
    if (first === 32 || first === 9) throw new FramingError('a folded header line (obs-fold)', status)
    const colon = line.indexOf(':')
    const name = colon > 0 ? line.slice(0, colon) : ''
    if (!TOKEN.test(name)) throw new FramingError(`a malformed header line: ${JSON.stringify(line.slice(0, 64))}`, status)
    let start = colon + 1
    let end = line.length
    while (start < end && (line.charCodeAt(start) === 32 || line.charCodeAt(start) === 9)) start++
    while (end > start && (line.charCodeAt(end - 1) === 32 || line.charCodeAt(end - 1) === 9)) end--
    const value = line.slice(start, end)
    if (hasControl(value)) throw new FramingError(`a control character in header ${name}`, status)
    const key = name.toLowerCase()
    const values = fields[key]
    if (values) values.push(value)
    else fields[key] = [value]
  }
  return {fields, connection: tokens(fields.connection)}
}

/** The comma-separated tokens of a field's values, lower-case. */
export function tokens(values: string[] | undefined): string[] {
  if (!values) return []
  const out: string[] = []
  for (const value of values)
    for (const part of value.split(',')) {
      const token = part.trim().toLowerCase()
      if (token !== '') out.push(token)
    }
  return out
}

/** The request head of `length` bytes at the start of `buf`; throws a FramingError (400). */
export function parseRequestHead(buf: Buffer, length: number): RequestHead {
  const lines = buf.toString('latin1', 0, length - 4).split('\r\n')
  const line = hasControl(lines[0] as string) ? null : REQUEST_LINE.exec(lines[0] as string)
  if (!line) throw new FramingError(`a malformed request line: ${JSON.stringify((lines[0] as string).slice(0, 64))}`, 400)
  return {length, method: line[1] as string, target: line[2] as string, minor: line[3] === '1' ? 1 : 0, ...parseFields(lines, 400)}
}

/** The response head of `length` bytes at the start of `buf`; throws a FramingError (502). */
export function parseResponseHead(buf: Buffer, length: number): ResponseHead {
  const lines = buf.toString('latin1', 0, length - 4).split('\r\n')
  const line = hasControl(lines[0] as string) ? null : STATUS_LINE.exec(lines[0] as string)
  if (!line) throw new FramingError(`a malformed status line: ${JSON.stringify((lines[0] as string).slice(0, 64))}`, 502)
  return {length, status: Number(line[2]), minor: line[1] === '1' ? 1 : 0, ...parseFields(lines, 502)}
}

function contentLength(values: string[], status: number): number {
  let length: number | undefined
  for (const value of values)
    for (const part of value.split(',')) {
      const text = part.trim()
      if (!/^\d{1,15}$/.test(text)) throw new FramingError(`a malformed Content-Length: ${JSON.stringify(value.slice(0, 32))}`, status)
      const n = Number(text)
      if (length !== undefined && n !== length) throw new FramingError('Content-Length values that differ', status)
      length = n
    }
  return length as number
}

/** How a request's body is framed (RFC 9112 §6.3); throws a FramingError (400) for an ambiguous one. */
export function requestFraming(head: RequestHead): Framing {
  const te = head.fields['transfer-encoding']
  const cl = head.fields['content-length']
  if (te) {
    if (cl) throw new FramingError('both Transfer-Encoding and Content-Length', 400)
    const codings = tokens(te)
    if (codings[codings.length - 1] !== 'chunked' || codings.indexOf('chunked') !== codings.length - 1)
      throw new FramingError(`a request Transfer-Encoding that does not end in chunked: ${te.join(', ')}`, 400)
    return {kind: 'chunked'}
  }
  if (cl) {
    const length = contentLength(cl, 400)
    return length === 0 ? {kind: 'none'} : {kind: 'length', length}
  }
  return {kind: 'none'}
}

/** How a response to `method` is framed (RFC 9112 §6.3); throws a FramingError (502) for a malformed one. */
export function responseFraming(head: ResponseHead, method: string): Framing {
  if (method === 'HEAD' || head.status < 200 || head.status === 204 || head.status === 304) return {kind: 'none'}
  const te = head.fields['transfer-encoding']
  if (te) return tokens(te).at(-1) === 'chunked' ? {kind: 'chunked'} : {kind: 'close'}
  const cl = head.fields['content-length']
  if (cl) {
    const length = contentLength(cl, 502)
    return length === 0 ? {kind: 'none'} : {kind: 'length', length}
  }
  return {kind: 'close'}
}

/** Whether the sender of `head` keeps the connection open after this message (Connection, the version). */
export function keepsAlive(head: MessageHead): boolean {
  return head.minor === 1 ? !head.connection.includes('close') : head.connection.includes('keep-alive')
}

/** Whether a request asks to leave HTTP (Upgrade with Connection: upgrade, or CONNECT): bytes both ways after its head. */
export function isTunnel(head: RequestHead): boolean {
  return head.method === 'CONNECT' || (head.fields.upgrade !== undefined && head.connection.includes('upgrade'))
}

/** The head with its Connection (and Keep-Alive) fields replaced by `Connection: close`. */
export function withConnectionClose(buf: Buffer, length: number): Buffer {
  const lines = buf.toString('latin1', 0, length - 4).split('\r\n')
  const kept = lines.filter((line, i) => i === 0 || !/^(connection|keep-alive)[ \t]*:/i.test(line))
  kept.push('Connection: close')
  return Buffer.from(`${kept.join('\r\n')}\r\n\r\n`, 'latin1')
}

/**
 * The head of an answer whose server closes its connection, for a client that keeps its own open:
 * HTTP/1.1, its Connection (and Keep-Alive) fields dropped, and `Transfer-Encoding: chunked` when
 * its body was to end with the connection (it is then sent in chunks).
 */
export function withClientKeptAlive(buf: Buffer, length: number, chunked: boolean, http10Client: boolean): Buffer {
  const lines = buf.toString('latin1', 0, length - 4).split('\r\n')
  const kept = lines.filter((line, i) => i === 0 || !/^(connection|keep-alive)[ \t]*:/i.test(line))
  kept[0] = (kept[0] as string).replace(/^HTTP\/1\.0/, 'HTTP/1.1')
  if (chunked) kept.push('Transfer-Encoding: chunked')
  if (http10Client) kept.push('Connection: keep-alive')
  return Buffer.from(`${kept.join('\r\n')}\r\n\r\n`, 'latin1')
}

/** Finds where a body ends as its bytes arrive (the bytes themselves are passed on unchanged). */
export interface BodyFramer {
  /** Reads `buf` from `start`: the index just past the body's end, or -1 when all of it belongs to the body. Throws a FramingError. */
  feed(buf: Buffer, start: number): number
}

export function bodyFramer(framing: Framing, status = 400): BodyFramer {
  switch (framing.kind) {
    case 'none':
      return {feed: (_buf, start) => start}
    case 'close':
      return {feed: () => -1}
    case 'length': {
      let remaining = framing.length
      return {
        feed(buf, start) {
          const available = buf.length - start
          if (available < remaining) {
            remaining -= available
            return -1
          }
          const end = start + remaining
          remaining = 0
          return end
        },
      }
    }
    case 'chunked':
      return new ChunkedFramer(status)
  }
}

enum Chunk {
  Size,
  Extension,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  Trailer,
  TrailerLf,
  EndLf,
  Done,
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/** A chunked body: size lines (extensions skipped), data, CRLF; then trailer lines up to an empty one. */
export class ChunkedFramer implements BodyFramer {
  private state = Chunk.Size
  private size = 0
  private digits = 0
  private lineBytes = 0
  private trailerBytes = 0

  constructor(private readonly status = 400) {}

  private fail(what: string): never {
    throw new FramingError(`a malformed chunked body: ${what}`, this.status)
  }

  feed(buf: Buffer, start: number): number {
    let i = start
    const n = buf.length
    while (i < n) {
      switch (this.state) {
        case Chunk.Data: {
          const take = Math.min(this.size, n - i)
          i += take
          this.size -= take
          if (this.size === 0) this.state = Chunk.DataCr
          continue
        }
        case Chunk.Size: {
          const c = buf[i] as number
          const v = hexValue(c)
          if (v >= 0) {
            if (++this.digits > 13) this.fail('a chunk size too large')
            this.size = this.size * 16 + v
          } else if (this.digits === 0) this.fail('a chunk without its size')
          else if (c === 13) this.state = Chunk.SizeLf
          else if (c === 59 || c === 32 || c === 9) {
            this.state = Chunk.Extension
            this.lineBytes = 0
          } else this.fail('a bad character in a chunk size')
          break
        }
        case Chunk.Extension: {
          const c = buf[i] as number
          if (c === 13) this.state = Chunk.SizeLf
          else if (c === 10 || ++this.lineBytes > MAX_CHUNK_LINE) this.fail('a bad chunk extension')
          break
        }
        case Chunk.SizeLf:
          if (buf[i] !== 10) this.fail('a chunk size line without CRLF')
          this.digits = 0
          if (this.size === 0) this.state = Chunk.TrailerStart
          else this.state = Chunk.Data
          break
        case Chunk.DataCr:
          if (buf[i] !== 13) this.fail('chunk data longer than its size')
          this.state = Chunk.DataLf
          break
        case Chunk.DataLf:
          if (buf[i] !== 10) this.fail('chunk data without CRLF')
          this.state = Chunk.Size
          break
        case Chunk.TrailerStart:
          this.state = buf[i] === 13 ? Chunk.EndLf : Chunk.Trailer
          if (this.state === Chunk.Trailer) continue
          break
        case Chunk.Trailer: {
          const c = buf[i] as number
          if (c === 13) this.state = Chunk.TrailerLf
          else if (c === 10 || ++this.trailerBytes > MAX_TRAILERS) this.fail('bad trailers')
          break
        }
        case Chunk.TrailerLf:
          if (buf[i] !== 10) this.fail('a trailer line without CRLF')
          this.state = Chunk.TrailerStart
          break
        case Chunk.EndLf:
          if (buf[i] !== 10) this.fail('a last chunk without CRLF')
          this.state = Chunk.Done
          return i + 1
        case Chunk.Done:
          return i
      }
      i++
    }
    return -1
  }
}
