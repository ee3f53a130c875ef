// Reads a pcap stream as tcpdump writes it (`-w -`) and keeps only counts: packets, those to or from
// HBONE's port, and those whose bytes hold a marker string. Nothing is stored, so a long capture costs
// no disk and no memory. Each frame is searched whole (headers included), so the marker is found in any
// packet it appears in, TCP or not; a marker split across two TCP segments would be missed, which is why
// the load puts it at the start of each request, in its first segment.

/** The port HBONE tunnels use (and nothing else should carry a workload's bytes between nodes). */
export const HBONE_PORT = 15008;
/** Hits kept as examples, per needle. */
const MAX_EXAMPLES = 5;

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const GLOBAL_HEADER_BYTES = 24;
const RECORD_HEADER_BYTES = 16;
const LINKTYPE_ETHERNET = 1;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_VLAN = 0x8100;
const IPPROTO_TCP = 6;

/** One packet that held a needle: where it went. */
export interface NeedleHit {
  /** Epoch ms of the capture. */
  readonly timeMs: number;
  /** `ip:port > ip:port` (TCP) or `ip > ip`. */
  readonly flow: string;
}

export interface NeedleCount {
  readonly needle: string;
  readonly packets: number;
  readonly examples: readonly NeedleHit[];
}

export interface PcapScan {
  readonly packets: number;
  readonly bytes: number;
  readonly tcpPackets: number;
  /** TCP packets to or from port 15008. */
  readonly hbonePackets: number;
  /** Their TCP payload bytes. */
  readonly hbonePayloadBytes: number;
  /** TCP packets by the lower of their two ports (the service side, for the lab's ports): `port → n`. */
  readonly tcpByPort: Readonly<Record<string, number>>;
  readonly needles: readonly NeedleCount[];
}

interface Needle {
  readonly text: string;
  readonly bytes: Buffer;
  packets: number;
  readonly examples: NeedleHit[];
}

/** Feed it the stream's chunks in order; `result()` at any time. */
export class PcapScanner {
  readonly #needles: Needle[];
  #pending: Buffer = Buffer.alloc(0);
  #headerRead = false;
  #littleEndian = true;
  #nanoseconds = false;
  #linkType = LINKTYPE_ETHERNET;
  #packets = 0;
  #bytes = 0;
  #tcp = 0;
  #hbone = 0;
  #hboneBytes = 0;
  readonly #byPort = new Map<number, number>();

  constructor(needles: readonly string[]) {
    this.#needles = needles.map((text) => ({
      text,
      bytes: Buffer.from(text, 'latin1'),
      packets: 0,
      examples: [],
    }));
  }

  push(chunk: Buffer): void {
    let buf = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    let at = 0;
    if (!this.#headerRead) {
      if (buf.length < GLOBAL_HEADER_BYTES) {
        this.#pending = buf;
        return;
      }
      this.#readGlobalHeader(buf);
      at = GLOBAL_HEADER_BYTES;
    }
    while (buf.length - at >= RECORD_HEADER_BYTES) {
      const caplen = this.#u32(buf, at + 8);
      if (buf.length - at - RECORD_HEADER_BYTES < caplen) break;
      const sec = this.#u32(buf, at);
      const frac = this.#u32(buf, at + 4);
      const timeMs = sec * 1000 + (this.#nanoseconds ? frac / 1e6 : frac / 1e3);
      const start = at + RECORD_HEADER_BYTES;
      this.#frame(buf.subarray(start, start + caplen), Math.round(timeMs));
      at = start + caplen;
    }
    buf = buf.subarray(at);
    // Copied: the rest must not keep the whole chunk alive.
    this.#pending = Buffer.from(buf);
  }

  result(): PcapScan {
    const tcpByPort: Record<string, number> = {};
    for (const [port, n] of [...this.#byPort].sort((a, b) => b[1] - a[1])) tcpByPort[String(port)] = n;
    return {
      packets: this.#packets,
      bytes: this.#bytes,
      tcpPackets: this.#tcp,
      hbonePackets: this.#hbone,
      hbonePayloadBytes: this.#hboneBytes,
      tcpByPort,
      needles: this.#needles.map((n) => ({ needle: n.text, packets: n.packets, examples: n.examples })),
    };
  }

  #readGlobalHeader(buf: Buffer): void {
    const le = buf.readUInt32LE(0);
    const be = buf.readUInt32BE(0);
    if (le === PCAP_MAGIC_US || le === PCAP_MAGIC_NS) this.#littleEndian = true;
    else if (be === PCAP_MAGIC_US || be === PCAP_MAGIC_NS) this.#littleEndian = false;
    else throw new Error(`not a pcap stream (magic 0x${le.toString(16)})`);
    this.#nanoseconds = (this.#littleEndian ? le : be) === PCAP_MAGIC_NS;
    this.#linkType = this.#u32(buf, 20) & 0xffff;
    if (this.#linkType !== LINKTYPE_ETHERNET)
      throw new Error(`pcap link type ${this.#linkType}: only Ethernet (1) is read`);
    this.#headerRead = true;
  }

  #u32(buf: Buffer, at: number): number {
    return this.#littleEndian ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
  }

  #frame(frame: Buffer, timeMs: number): void {
    this.#packets++;
    this.#bytes += frame.length;
    let flow: string | undefined;
    for (const n of this.#needles) {
      if (frame.indexOf(n.bytes) < 0) continue;
      n.packets++;
      flow ??= describeFlow(frame);
      if (n.examples.length < MAX_EXAMPLES) n.examples.push({ timeMs, flow });
    }
    const tcp = tcpOf(frame);
    if (tcp === undefined) return;
    this.#tcp++;
    const port = Math.min(tcp.srcPort, tcp.dstPort);
    this.#byPort.set(port, (this.#byPort.get(port) ?? 0) + 1);
    if (tcp.srcPort === HBONE_PORT || tcp.dstPort === HBONE_PORT) {
      this.#hbone++;
      this.#hboneBytes += tcp.payloadBytes;
    }
  }
}

interface TcpView {
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly payloadBytes: number;
}

/** The IPv4 header's offset in an Ethernet frame (past one VLAN tag), or undefined for other frames. */
function ipv4Offset(frame: Buffer): number | undefined {
  if (frame.length < 14) return undefined;
  let type = frame.readUInt16BE(12);
  let at = 14;
  if (type === ETHERTYPE_VLAN && frame.length >= 18) {
    type = frame.readUInt16BE(16);
    at = 18;
  }
  return type === ETHERTYPE_IPV4 && frame.length >= at + 20 ? at : undefined;
}

function ipText(frame: Buffer, at: number): string {
  return `${frame[at]}.${frame[at + 1]}.${frame[at + 2]}.${frame[at + 3]}`;
}

function tcpOf(frame: Buffer): TcpView | undefined {
  const ip = ipv4Offset(frame);
  if (ip === undefined || frame[ip + 9] !== IPPROTO_TCP) return undefined;
  const ihl = (frame[ip]! & 0x0f) * 4;
  const totalLength = frame.readUInt16BE(ip + 2);
  const tcp = ip + ihl;
  if (frame.length < tcp + 20) return undefined;
  const dataOffset = (frame[tcp + 12]! >> 4) * 4;
  return {
    src: ipText(frame, ip + 12),
    dst: ipText(frame, ip + 16),
    srcPort: frame.readUInt16BE(tcp),
    dstPort: frame.readUInt16BE(tcp + 2),
    payloadBytes: Math.max(0, totalLength - ihl - dataOffset),
  };
}

function describeFlow(frame: Buffer): string {
  const tcp = tcpOf(frame);
  if (tcp !== undefined) return `${tcp.src}:${tcp.srcPort} > ${tcp.dst}:${tcp.dstPort}`;
  const ip = ipv4Offset(frame);
  return ip === undefined ? 'not IPv4' : `${ipText(frame, ip + 12)} > ${ipText(frame, ip + 16)}`;
}
