/** A wiretap's capture: pcap records and packet headers (crafted packets), TCP streams rebuilt from segments. */
import {chmod, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {decodePacket, LINKTYPE, PcapReader, type TcpSegment} from '../dist/pcap.js'
import {type StreamSink, TcpReassembler} from '../dist/reassembly.js'
import {Capture, captureFilter, tcpdumpArgs} from '../dist/capture.js'

interface Tcp {
  srcPort?: number
  dstPort?: number
  seq: number
  flags?: string
  payload?: string
}

const FLAGS: Record<string, number> = {F: 0x01, S: 0x02, R: 0x04, P: 0x08, A: 0x10}

function tcpHeader(t: Tcp): Buffer {
  const h = Buffer.alloc(20)
  h.writeUInt16BE(t.srcPort ?? 40000, 0)
  h.writeUInt16BE(t.dstPort ?? 80, 2)
  h.writeUInt32BE(t.seq >>> 0, 4)
  h.writeUInt32BE(1, 8)
  h[12] = 5 << 4
  h[13] = [...(t.flags ?? 'A')].reduce((f, c) => f | FLAGS[c], 0)
  h.writeUInt16BE(65535, 14)
  return Buffer.concat([h, Buffer.from(t.payload ?? '')])
}

function ipv4(tcp: Buffer, src = [10, 0, 0, 2], dst = [10, 0, 0, 3]): Buffer {
  const h = Buffer.alloc(20)
  h[0] = 0x45
  h.writeUInt16BE(20 + tcp.length, 2)
  h[8] = 64
  h[9] = 6
  Buffer.from(src).copy(h, 12)
  Buffer.from(dst).copy(h, 16)
  return Buffer.concat([h, tcp])
}

function ipv6(tcp: Buffer): Buffer {
  const h = Buffer.alloc(40)
  h[0] = 0x60
  h.writeUInt16BE(tcp.length, 4)
  h[6] = 6
  h[7] = 64
  h.writeUInt16BE(0xfd00, 8)
  h[23] = 2
  h.writeUInt16BE(0xfd00, 24)
  h[39] = 3
  return Buffer.concat([h, tcp])
}

/** Linux cooked v2 (`-i any`): protocol, ifindex, hatype, pkttype. */
function sll2(ip: Buffer, {pkttype = 0, hatype = 1, proto = 0x0800} = {}): Buffer {
  const h = Buffer.alloc(20)
  h.writeUInt16BE(proto, 0)
  h.writeUInt32BE(2, 4)
  h.writeUInt16BE(hatype, 8)
  h[10] = pkttype
  h[11] = 6
  return Buffer.concat([h, ip])
}

/** Linux cooked v1: pkttype, hatype, halen, address, protocol. */
function sll(ip: Buffer, {pkttype = 0, hatype = 1, proto = 0x0800} = {}): Buffer {
  const h = Buffer.alloc(16)
  h.writeUInt16BE(pkttype, 0)
  h.writeUInt16BE(hatype, 2)
  h.writeUInt16BE(6, 4)
  h.writeUInt16BE(proto, 14)
  return Buffer.concat([h, ip])
}

function pcapHeader(linkType: number, bigEndian = false): Buffer {
  const h = Buffer.alloc(24)
  const w32 = (v: number, at: number) => (bigEndian ? h.writeUInt32BE(v, at) : h.writeUInt32LE(v, at))
  w32(0xa1b2c3d4, 0)
  ;(bigEndian ? h.writeUInt16BE.bind(h) : h.writeUInt16LE.bind(h))(2, 4)
  ;(bigEndian ? h.writeUInt16BE.bind(h) : h.writeUInt16LE.bind(h))(4, 6)
  w32(262144, 16)
  w32(linkType, 20)
  return h
}

function pcapRecord(packet: Buffer, length = packet.length, bigEndian = false): Buffer {
  const h = Buffer.alloc(16)
  const w32 = (v: number, at: number) => (bigEndian ? h.writeUInt32BE(v, at) : h.writeUInt32LE(v, at))
  w32(1_700_000_000, 0)
  w32(5, 4)
  w32(packet.length, 8)
  w32(length, 12)
  return Buffer.concat([h, packet])
}

describe('pcap', () => {
  it('reads records split across chunks in any way, either byte order', () => {
    for (const bigEndian of [false, true]) {
      const packets = [sll2(ipv4(tcpHeader({seq: 1, flags: 'S'}))), sll2(ipv4(tcpHeader({seq: 2, flags: 'PA', payload: 'hello'})))]
      const stream = Buffer.concat([pcapHeader(LINKTYPE.LINUX_SLL2, bigEndian), ...packets.map((p) => pcapRecord(p, p.length, bigEndian))])
      for (const size of [1, 7, 16, 1000]) {
        const reader = new PcapReader()
        const got: Buffer[] = []
        for (let at = 0; at < stream.length; at += size) for (const r of reader.push(stream.subarray(at, at + size))) got.push(Buffer.from(r.data))
        expect(reader.linkType).toBe(LINKTYPE.LINUX_SLL2)
        expect(got).toEqual(packets)
      }
    }
  })

  it('refuses a stream that is not pcap', () => {
    expect(() => new PcapReader().push(Buffer.alloc(24, 1))).toThrow(/not a pcap stream/)
  })

  it('decodes IPv4 and IPv6 TCP segments behind Linux cooked v1 and v2, Ethernet and raw IP', () => {
    const seg = tcpHeader({srcPort: 51000, dstPort: 8080, seq: 0xfffffff0, flags: 'PA', payload: 'GET /'})
    const want = {src: '10.0.0.2', srcPort: 51000, dst: '10.0.0.3', dstPort: 8080, seq: 0xfffffff0, syn: false, fin: false, rst: false, truncated: false}
    for (const [link, packet] of [
      [LINKTYPE.LINUX_SLL2, sll2(ipv4(seg))],
      [LINKTYPE.LINUX_SLL, sll(ipv4(seg))],
      [LINKTYPE.ETHERNET, Buffer.concat([Buffer.alloc(12), Buffer.from([0x08, 0x00]), ipv4(seg)])],
      [LINKTYPE.RAW, ipv4(seg)],
    ] as const) {
      const s = decodePacket(link, {data: packet, length: packet.length})
      expect(s).toMatchObject(want)
      expect(s?.payload.toString()).toBe('GET /')
    }
    const six = decodePacket(LINKTYPE.LINUX_SLL2, {data: sll2(ipv6(seg), {proto: 0x86dd}), length: 0})
    expect(six).toMatchObject({src: 'fd00:0:0:0:0:0:0:2', dst: 'fd00:0:0:0:0:0:0:3', dstPort: 8080})
    expect(six?.payload.toString()).toBe('GET /')
    expect(decodePacket(LINKTYPE.LINUX_SLL2, {data: sll2(ipv4(tcpHeader({seq: 9, flags: 'SFR'}))), length: 0})).toMatchObject({syn: true, fin: true, rst: true})
  })

  it('skips what is not a client packet arriving here: sent by this host, on the loopback device, not TCP', () => {
    const packet = ipv4(tcpHeader({seq: 1, payload: 'x'}))
    for (const [link, data] of [
      [LINKTYPE.LINUX_SLL2, sll2(packet, {pkttype: 4})],
      [LINKTYPE.LINUX_SLL2, sll2(packet, {hatype: 772})],
      [LINKTYPE.LINUX_SLL2, sll2(packet, {proto: 0x0806})],
      [LINKTYPE.LINUX_SLL, sll(packet, {pkttype: 4})],
      [LINKTYPE.LINUX_SLL, sll(packet, {hatype: 772})],
    ] as const)
      expect(decodePacket(link, {data, length: data.length})).toBeUndefined()
    expect(decodePacket(LINKTYPE.LINUX_SLL2, {data: sll2(packet), length: 0})).toBeDefined()
    const udp = ipv4(tcpHeader({seq: 1}))
    udp[9] = 17
    expect(decodePacket(LINKTYPE.RAW, {data: udp, length: udp.length})).toBeUndefined()
  })

  it('the IP length bounds the payload (Ethernet padding); a segment cut by the snapshot length is truncated', () => {
    const padded = Buffer.concat([ipv4(tcpHeader({seq: 1, payload: 'ab'})), Buffer.alloc(6)])
    expect(decodePacket(LINKTYPE.RAW, {data: padded, length: padded.length})?.payload.toString()).toBe('ab')
    const whole = ipv4(tcpHeader({seq: 1, payload: 'abcdef'}))
    const cut = decodePacket(LINKTYPE.RAW, {data: whole.subarray(0, whole.length - 3), length: whole.length})
    expect(cut?.truncated).toBe(true)
  })
})

/** A reassembler whose streams are recorded: what each got, and how it ended. */
function streams(options: {gapTimeoutMs?: number; maxBufferedBytes?: number} = {}) {
  let now = 0
  const got = new Map<string, {data: string; ended?: 'end' | 'drop'; why?: string}>()
  const r = new TcpReassembler({
    ...options,
    now: () => now,
    open: (key): StreamSink => {
      const s: {data: string; ended?: 'end' | 'drop'; why?: string} = {data: ''}
      got.set(key + (got.has(key) ? ' again' : ''), s)
      return {
        write: (c) => {
          expect(s.ended).toBeUndefined()
          s.data += c.toString()
        },
        end: () => (s.ended = 'end'),
        drop: (why) => {
          s.ended = 'drop'
          s.why = why
        },
      }
    },
  })
  const seg = (srcPort: number, seq: number, flags: string, payload = ''): TcpSegment => ({
    src: '10.0.0.2',
    srcPort,
    dst: '10.0.0.3',
    dstPort: 80,
    seq: seq >>> 0,
    syn: flags.includes('S'),
    fin: flags.includes('F'),
    rst: flags.includes('R'),
    payload: Buffer.from(payload),
    truncated: false,
  })
  return {r, got, seg, advance: (ms: number) => (now += ms), of: (port: number) => got.get(`10.0.0.2 ${port} > 10.0.0.3 80`)}
}

describe('TCP reassembly', () => {
  it('in order: SYN starts, data follows, FIN ends', () => {
    const {r, seg, of} = streams()
    r.push(seg(1000, 100, 'S'))
    r.push(seg(1000, 101, 'A', 'GET / HTTP/1.1\r\n'))
    r.push(seg(1000, 117, 'A', '\r\n'))
    r.push(seg(1000, 119, 'FA'))
    expect(of(1000)).toEqual({data: 'GET / HTTP/1.1\r\n\r\n', ended: 'end'})
    expect(r.size).toBe(0)
  })

  it('out of order: later segments wait for the one before them; a FIN that comes early waits too', () => {
    const {r, seg, of} = streams()
    r.push(seg(1000, 0, 'S'))
    r.push(seg(1000, 7, 'A', 'ccc'))
    r.push(seg(1000, 10, 'FA', 'dd'))
    r.push(seg(1000, 4, 'A', 'bbb'))
    expect(of(1000)).toEqual({data: ''})
    r.push(seg(1000, 1, 'A', 'aaa'))
    expect(of(1000)).toEqual({data: 'aaabbbcccdd', ended: 'end'})
  })

  it('retransmissions and overlaps: each byte once', () => {
    const {r, seg, of} = streams()
    r.push(seg(1000, 0, 'S'))
    r.push(seg(1000, 0, 'S'))
    r.push(seg(1000, 1, 'A', 'abcd'))
    r.push(seg(1000, 1, 'A', 'abcd'))
    r.push(seg(1000, 3, 'A', 'cdefg'))
    r.push(seg(1000, 10, 'A', 'jk'))
    r.push(seg(1000, 10, 'A', 'jk'))
    r.push(seg(1000, 6, 'A', 'fghij'))
    r.push(seg(1000, 2, 'A', 'bc'))
    expect(of(1000)).toEqual({data: 'abcdefghijk'})
  })

  it('two connections interleaved, each its own stream; sequence numbers wrap', () => {
    const {r, seg, of} = streams()
    r.push(seg(1000, 0xfffffffd, 'S'))
    r.push(seg(2000, 500, 'S'))
    r.push(seg(2000, 501, 'A', 'one '))
    r.push(seg(1000, 0xfffffffe, 'A', 'AB'))
    r.push(seg(2000, 505, 'A', 'two'))
    r.push(seg(1000, 0, 'A', 'CD'))
    r.push(seg(1000, 2, 'FA'))
    expect(of(1000)).toEqual({data: 'ABCD', ended: 'end'})
    expect(of(2000)).toEqual({data: 'one two'})
    r.push(seg(2000, 508, 'RA'))
    expect(of(2000)).toEqual({data: 'one two', ended: 'end'})
  })

  it('a connection whose SYN was not seen is not copied; a new SYN on the same ports starts a new stream', () => {
    const {r, seg, got, of} = streams()
    r.push(seg(1000, 50, 'A', 'middle'))
    expect(got.size).toBe(0)
    r.push(seg(1000, 100, 'S'))
    r.push(seg(1000, 101, 'A', 'first'))
    r.push(seg(1000, 9000, 'S'))
    r.push(seg(1000, 9001, 'A', 'second'))
    expect(of(1000)).toEqual({data: 'first', ended: 'end'})
    expect(got.get('10.0.0.2 1000 > 10.0.0.3 80 again')).toEqual({data: 'second'})
  })

  it('a gap that does not fill drops the stream: after a while, or when too much waits past it', () => {
    const {r, seg, of, advance} = streams({gapTimeoutMs: 1000, maxBufferedBytes: 8})
    r.push(seg(1000, 0, 'S'))
    r.push(seg(1000, 1, 'A', 'ab'))
    r.push(seg(1000, 5, 'A', 'ef'))
    advance(600)
    r.sweep()
    expect(of(1000)?.ended).toBeUndefined()
    advance(600)
    r.sweep()
    expect(of(1000)).toMatchObject({data: 'ab', ended: 'drop', why: expect.stringContaining('gap')})
    r.push(seg(1000, 3, 'A', 'cd'))
    expect(of(1000)?.data).toBe('ab')

    r.push(seg(2000, 0, 'S'))
    r.push(seg(2000, 5, 'A', '12345'))
    r.push(seg(2000, 10, 'A', '67890'))
    expect(of(2000)).toMatchObject({data: '', ended: 'drop', why: expect.stringContaining('wait past a gap')})
  })

  it('a segment not captured whole drops the stream', () => {
    const {r, seg, of} = streams()
    r.push(seg(1000, 0, 'S'))
    r.push({...seg(1000, 1, 'A', 'ab'), truncated: true})
    expect(of(1000)?.ended).toBe('drop')
  })

  it('close ends every stream', () => {
    const {r, seg, of} = streams()
    r.push(seg(1000, 0, 'S'))
    r.push(seg(2000, 0, 'S'))
    r.close()
    expect([of(1000)?.ended, of(2000)?.ended]).toEqual(['end', 'end'])
  })
})

/** A stand-in for tcpdump: says it listens, writes `pcap` to stdout, then exits (or stays). */
async function fakeTcpdump(pcap: Buffer, stay: boolean): Promise<{path: string; dir: string}> {
  const dir = await mkdtemp(join(tmpdir(), 'tp-capture-'))
  const path = join(dir, 'tcpdump')
  await writeFile(
    path,
    `#!${process.execPath}\nprocess.stderr.write('tcpdump: listening on any, link-type LINUX_SLL2\\n')\nprocess.stdout.write(Buffer.from('${pcap.toString('base64')}', 'base64'), () => { if (!${stay}) process.exit(0) })\n${stay ? 'setInterval(() => undefined, 1000)' : ''}\n`,
  )
  await chmod(path, 0o755)
  return {path, dir}
}

describe('Capture', () => {
  const packets = [
    sll2(ipv4(tcpHeader({srcPort: 1, seq: 10, flags: 'S'}))),
    sll2(ipv4(tcpHeader({srcPort: 1, seq: 11, flags: 'PA', payload: 'GET / HTTP/1.1\r\n\r\n'}))),
    // another port, and a packet this host sent: not copied
    sll2(ipv4(tcpHeader({srcPort: 2, dstPort: 81, seq: 1, flags: 'S'}))),
    sll2(ipv4(tcpHeader({srcPort: 3, seq: 1, flags: 'S'})), {pkttype: 4}),
    sll2(ipv4(tcpHeader({srcPort: 1, seq: 29, flags: 'FA'}))),
  ]
  const pcap = Buffer.concat([pcapHeader(LINKTYPE.LINUX_SLL2), ...packets.map((p) => pcapRecord(p))])

  it('copies each connection tcpdump captures; says when tcpdump ends by itself', async () => {
    const fake = await fakeTcpdump(pcap, false)
    try {
      const got: string[] = []
      let exited: string | undefined
      const capture = new Capture({
        port: 80,
        tcpdump: fake.path,
        log: () => undefined,
        onExit: (why) => (exited = why),
        open: (key) => {
          got.push(`open ${key}`)
          return {write: (c) => got.push(c.toString()), end: () => got.push('end'), drop: (why) => got.push(`drop ${why}`)}
        },
      })
      await capture.start()
      await expect.poll(() => exited).toMatch(/tcpdump exited/)
      expect(got).toEqual(['open 10.0.0.2 1 > 10.0.0.3 80', 'GET / HTTP/1.1\r\n\r\n', 'end'])
    } finally {
      await rm(fake.dir, {recursive: true, force: true})
    }
  })

  it('stop ends tcpdump and the copies open, without an exit report', async () => {
    const fake = await fakeTcpdump(Buffer.concat([pcapHeader(LINKTYPE.LINUX_SLL2), pcapRecord(packets[0]), pcapRecord(packets[1])]), true)
    try {
      const got: string[] = []
      let exited = false
      const capture = new Capture({
        port: 80,
        tcpdump: fake.path,
        log: () => undefined,
        onExit: () => (exited = true),
        open: () => ({write: (c) => got.push(c.toString()), end: () => got.push('end'), drop: () => got.push('drop')}),
      })
      await capture.start()
      await expect.poll(() => got.length).toBe(1)
      capture.stop()
      expect(got).toEqual(['GET / HTTP/1.1\r\n\r\n', 'end'])
      await new Promise((r) => setTimeout(r, 200))
      expect(exited).toBe(false)
    } finally {
      await rm(fake.dir, {recursive: true, force: true})
    }
  })

  it('no tcpdump: start rejects, saying why', async () => {
    const capture = new Capture({port: 80, tcpdump: '/nonexistent/tcpdump', log: () => undefined, open: () => undefined})
    await expect(capture.start()).rejects.toThrow(/cannot run tcpdump/)
  })
})

describe('tcpdump', () => {
  it('captures what arrives for the port, whole packets, on stdout as it comes', () => {
    const args = tcpdumpArgs(8080)
    expect(args).toEqual(expect.arrayContaining(['-i', 'any', '-U', '-w', '-']))
    expect(args[args.indexOf('-s') + 1]).toBe('0')
    expect(captureFilter(8080)).toMatch(/^inbound and tcp dst port 8080 and /)
  })
})
