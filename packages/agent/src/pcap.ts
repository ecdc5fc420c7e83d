// Reading `tcpdump -w -` output: pcap records, their link-layer header (Linux cooked v1/v2 from
// `-i any`, Ethernet, raw IP), then IPv4/IPv6 and TCP. Pure and small: a wiretap only needs the
// client→server TCP segments of one port.

/** Link types (www.tcpdump.org/linktypes.html) this reader decodes. */
export const LINKTYPE = {ETHERNET: 1, RAW: 101, LINUX_SLL: 113, IPV4: 228, IPV6: 229, LINUX_SLL2: 276} as const

/** sll_pkttype of a packet this host sent (PACKET_OUTGOING): not a client's. */
const PACKET_OUTGOING = 4
/** sll_hatype of the loopback device (ARPHRD_LOOPBACK): the agents' own connections to the app. */
const ARPHRD_LOOPBACK = 772

export interface PcapRecord {
  /** Bytes captured (may be fewer than the packet's `length` when the snapshot length cut it). */
  data: Buffer
  length: number
}

/**
 * A pcap stream, chunk by chunk: the global header once, then each record. Throws on a stream that
 * is not pcap (an unknown magic number).
 */
export class PcapReader {
  private pending: Buffer = Buffer.alloc(0)
  private little = true
  /** The link type from the global header; undefined until it is read. */
  linkType?: number

  /** Takes the next chunk of the stream; returns the records it completed. */
  push(chunk: Buffer): PcapRecord[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    const records: PcapRecord[] = []
    let at = 0
    if (this.linkType === undefined) {
      if (this.pending.length < 24) return records
      const magic = this.pending.readUInt32LE(0)
      // microsecond (a1b2c3d4) or nanosecond (a1b23c4d) timestamps, either byte order
      if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) this.little = true
      else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) this.little = false
      else throw new Error(`not a pcap stream (magic ${magic.toString(16)})`)
      this.linkType = (this.little ? this.pending.readUInt32LE(20) : this.pending.readUInt32BE(20)) & 0x0fffffff
      at = 24
    }
    while (this.pending.length - at >= 16) {
      const caplen = this.little ? this.pending.readUInt32LE(at + 8) : this.pending.readUInt32BE(at + 8)
      const length = this.little ? this.pending.readUInt32LE(at + 12) : this.pending.readUInt32BE(at + 12)
      if (caplen > 0x4000000) throw new Error(`a pcap record of ${caplen} bytes: the stream is corrupt`)
      if (this.pending.length - at - 16 < caplen) break
      records.push({data: this.pending.subarray(at + 16, at + 16 + caplen), length})
      at += 16 + caplen
    }
    this.pending = this.pending.subarray(at)
    // records keep views of the old buffer; the next concat copies what is left
    return records
  }
}

export interface TcpSegment {
  /** "address port" of each end. */
  src: string
  srcPort: number
  dst: string
  dstPort: number
  seq: number
  syn: boolean
  fin: boolean
  rst: boolean
  payload: Buffer
  /** Part of the segment was not captured (snapshot length): its bytes cannot be copied. */
  truncated: boolean
}

/**
 * The TCP segment in a captured packet, or undefined when it carries none, or is not a client's
 * packet arriving at this namespace (sent by this host, or on the loopback device).
 */
export function decodePacket(linkType: number, record: PcapRecord): TcpSegment | undefined {
  const data = record.data
  let at: number
  let proto: number
  switch (linkType) {
    case LINKTYPE.LINUX_SLL: {
      // pkttype(2) hatype(2) halen(2) addr(8) protocol(2)
      if (data.length < 16) return undefined
      if (data.readUInt16BE(0) === PACKET_OUTGOING || data.readUInt16BE(2) === ARPHRD_LOOPBACK) return undefined
      proto = data.readUInt16BE(14)
      at = 16
      break
    }
    case LINKTYPE.LINUX_SLL2: {
      // protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8)
      if (data.length < 20) return undefined
      if (data[10] === PACKET_OUTGOING || data.readUInt16BE(8) === ARPHRD_LOOPBACK) return undefined
      proto = data.readUInt16BE(0)
      at = 20
      break
    }
    case LINKTYPE.ETHERNET: {
      if (data.length < 14) return undefined
      proto = data.readUInt16BE(12)
      at = 14
      // one 802.1Q tag
      if (proto === 0x8100 && data.length >= 18) {
        proto = data.readUInt16BE(16)
        at = 18
      }
      break
    }
    case LINKTYPE.RAW:
    case LINKTYPE.IPV4:
    case LINKTYPE.IPV6: {
      if (data.length < 1) return undefined
      proto = data[0] >> 4 === 6 ? 0x86dd : 0x0800
      at = 0
      break
    }
    default:
      return undefined
  }
  // the packet's bytes past the link header, and how many of them the packet really had
  const missing = Math.max(0, record.length - data.length)
  if (proto === 0x0800) return decodeIPv4(data.subarray(at), missing)
  if (proto === 0x86dd) return decodeIPv6(data.subarray(at), missing)
  return undefined
}

function decodeIPv4(ip: Buffer, missing: number): TcpSegment | undefined {
  if (ip.length < 20 || ip[0] >> 4 !== 4) return undefined
  const headerLength = (ip[0] & 0x0f) * 4
  if (ip[9] !== 6 || headerLength < 20) return undefined
  // a fragment (more fragments, or an offset): not reassembled here
  if ((ip.readUInt16BE(6) & 0x3fff) !== 0) return undefined
  // 0: a segment the receive offload merged past 64 KiB; its length is what was captured
  const total = ip.readUInt16BE(2) || ip.length + missing
  const src = `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`
  const dst = `${ip[16]}.${ip[17]}.${ip[18]}.${ip[19]}`
  return decodeTcp(ip, headerLength, total, missing, src, dst)
}

const IPV6_EXTENSIONS = new Set([0, 43, 60])

function decodeIPv6(ip: Buffer, missing: number): TcpSegment | undefined {
  if (ip.length < 40 || ip[0] >> 4 !== 6) return undefined
  const payloadLength = ip.readUInt16BE(4)
  const total = payloadLength === 0 ? ip.length + missing : 40 + payloadLength
  let next = ip[6]
  let at = 40
  // hop-by-hop, routing and destination options may come before TCP; a fragment header ends it
  while (IPV6_EXTENSIONS.has(next)) {
    if (ip.length < at + 8) return undefined
    next = ip[at]
    at += (ip[at + 1] + 1) * 8
  }
  if (next !== 6) return undefined
  return decodeTcp(ip, at, total, missing, address6(ip.subarray(8, 24)), address6(ip.subarray(24, 40)))
}

function address6(bytes: Buffer): string {
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16))
  return groups.join(':')
}

/** The TCP header at `at` of an IP packet of `total` bytes (of which `ip` holds the first ones). */
function decodeTcp(ip: Buffer, at: number, total: number, missing: number, src: string, dst: string): TcpSegment | undefined {
  if (ip.length < at + 20) return undefined
  const dataOffset = (ip[at + 12] >> 4) * 4
  if (dataOffset < 20) return undefined
  const flags = ip[at + 13]
  const start = at + dataOffset
  // Ethernet pads short frames: the IP length says where the segment ends
  const end = Math.min(total, ip.length)
  const payloadLength = Math.max(0, total - start)
  const payload = start < end ? ip.subarray(start, end) : Buffer.alloc(0)
  return {
    src,
    srcPort: ip.readUInt16BE(at),
    dst,
    dstPort: ip.readUInt16BE(at + 2),
    seq: ip.readUInt32BE(at + 4),
    fin: (flags & 0x01) !== 0,
    syn: (flags & 0x02) !== 0,
    rst: (flags & 0x04) !== 0,
    payload,
    truncated: payload.length < payloadLength || (missing > 0 && start > ip.length),
  }
}
