// The map encoders against the byte layouts in bpf/weft_capture.h (pure; runs everywhere).
import t from 'tap';
import { endianness } from 'node:os';
import {
  decodeConfig,
  decodeEnrolment,
  decodeStats,
  DEFAULT_CONFIG,
  encodeConfig,
  encodeEnrolment,
  indexKey,
  ipv4FromKey,
  ipv4Key,
  STAT_NAMES,
  sumPerCpuU64,
} from '../../ebpf-redirect/maps.js';

const LE = endianness() === 'LE';

t.test('enrolled keys are the address octets in wire order', async (t) => {
  t.same([...ipv4Key('10.200.0.2')], [10, 200, 0, 2]);
  t.equal(ipv4FromKey(Buffer.from([192, 168, 1, 254])), '192.168.1.254');
  t.throws(() => ipv4Key('10.200.0'), /not an IPv4 address/);
  t.throws(() => ipv4Key('fe80::1'), /not an IPv4 address/);
  t.throws(() => ipv4FromKey(Buffer.alloc(16)), /4 bytes/);
});

t.test('enrolment flags: 1 outbound, 2 inbound, 4 drain, host-order u32', async (t) => {
  const table = [
    [{ outbound: true, inbound: false, drain: false }, 1],
    [{ outbound: false, inbound: true, drain: false }, 2],
    [{ outbound: true, inbound: true, drain: false }, 3],
    [{ outbound: true, inbound: true, drain: true }, 7],
    [{ outbound: false, inbound: false, drain: true }, 4],
  ] as const;
  for (const [e, flags] of table) {
    const b = encodeEnrolment(e);
    t.equal(b.length, 4);
    t.equal(LE ? b.readUInt32LE() : b.readUInt32BE(), flags, JSON.stringify(e));
    t.same(decodeEnrolment(b), e);
  }
});

t.test('config is struct weft_config (28 bytes) and round-trips', async (t) => {
  const b = encodeConfig({ ...DEFAULT_CONFIG, failDrop: true, hbonePort: 15999 });
  t.equal(b.length, 28);
  const r32 = (o: number) => (LE ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const r16 = (o: number) => (LE ? b.readUInt16LE(o) : b.readUInt16BE(o));
  t.same([r32(0), r32(4), r32(8), r32(12), r32(16)], [1, 1, 0x5a1, 0x5af, 0xfff]);
  t.same([r16(20), r16(22), r16(24), r16(26)], [15001, 15006, 15999, 0]);
  t.same(decodeConfig(b), { ...DEFAULT_CONFIG, failDrop: true, hbonePort: 15999 });
  t.same(
    decodeConfig(Buffer.alloc(28)),
    { ...DEFAULT_CONFIG, layoutVersion: 0 },
    'zero fields mean the defaults',
  );
});

t.test('per-CPU counters are summed; missing keys count as 0', async (t) => {
  const perCpu = Buffer.alloc(24);
  [5n, 0n, 7n].forEach((v, i) =>
    LE ? perCpu.writeBigUInt64LE(v, i * 8) : perCpu.writeBigUInt64BE(v, i * 8),
  );
  t.equal(sumPerCpuU64(perCpu), 12);
  const stats = decodeStats((key) => ((LE ? key.readUInt32LE() : key.readUInt32BE()) === 3 ? perCpu : null));
  t.equal(stats.capturedOut, 12, 'index 3 is capturedOut');
  t.equal(stats.seen, 0);
  t.same(Object.keys(stats), [...STAT_NAMES]);
  t.equal(indexKey(13).length, 4);
});
