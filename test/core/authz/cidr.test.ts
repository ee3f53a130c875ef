// core/authz/cidr.ts: address text -> words agrees with core's canonicaliser; blocks contain exactly
// the addresses under their prefix, at every word boundary, for both families.
import t from 'tap';
import { canonicalIp, parseCidr } from '../../../core/model/ip.js';
import {
  cidrContains,
  compileCidr,
  parseIpInto,
  ParsedIp,
  type CidrMatcher,
} from '../../../core/authz/cidr.js';

function parsed(text: string, unmap = true): ParsedIp {
  const ip = new ParsedIp();
  parseIpInto(text, ip, unmap);
  return ip;
}

function words(ip: ParsedIp): [number, number, number, number, number] {
  return [ip.family, ip.w0, ip.w1, ip.w2, ip.w3];
}

function block(text: string): CidrMatcher {
  const cidr = parseCidr(text);
  if (cidr === undefined) throw new Error(`bad test CIDR ${text}`);
  return compileCidr(cidr);
}

/** mulberry32: a seeded generator, so a failure reproduces. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return (x ^ (x >>> 14)) >>> 0;
  };
}

t.test('parses addresses into words', async (t) => {
  const cases: [string, [number, number, number, number, number]][] = [
    ['0.0.0.0', [4, 0, 0, 0, 0]],
    ['10.1.2.3', [4, 0x0a010203, 0, 0, 0]],
    ['255.255.255.255', [4, 0xffffffff, 0, 0, 0]],
    ['::', [6, 0, 0, 0, 0]],
    ['::1', [6, 0, 0, 0, 1]],
    ['fd00::', [6, 0xfd000000, 0, 0, 0]],
    ['2001:db8::8:800:200c:417a', [6, 0x20010db8, 0, 0x00080800, 0x200c417a]],
    ['2001:DB8:0:0:1:0:0:1', [6, 0x20010db8, 0, 0x00010000, 1]],
    ['1:2:3:4:5:6:7::', [6, 0x00010002, 0x00030004, 0x00050006, 0x00070000]],
    ['::2:3:4:5:6:7:8', [6, 0x00000002, 0x00030004, 0x00050006, 0x00070008]],
    ['fe80::1%eth0', [6, 0xfe800000, 0, 0, 1]],
    ['::1.2.3.4', [6, 0, 0, 0, 0x01020304]],
    ['64:ff9b::10.0.0.1', [6, 0x0064ff9b, 0, 0, 0x0a000001]],
  ];
  for (const [text, expected] of cases) t.same(words(parsed(text)), expected, text);
});

t.test('IPv4-mapped IPv6 is IPv4 for connections, IPv6 when asked to keep it', async (t) => {
  t.same(words(parsed('::ffff:10.0.0.1')), [4, 0x0a000001, 0, 0, 0]);
  t.same(words(parsed('::ffff:a00:1')), [4, 0x0a000001, 0, 0, 0], 'hex form');
  t.same(words(parsed('::ffff:10.0.0.1', false)), [6, 0, 0, 0xffff, 0x0a000001]);
});

t.test('refuses what is not an address', async (t) => {
  const bad = [
    '',
    '1.2.3',
    '1.2.3.4.5',
    '1.2.3.256',
    '01.2.3.4',
    '1..2.3',
    '1.2.3.4 ',
    'a.b.c.d',
    ':',
    ':::',
    ':1::2',
    '1:::2',
    '1::2::3',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    '12345::',
    '1:',
    'g::1',
    '::1%',
    '1:2:3:4:5:6:7:1.2.3.4',
    '::1.2.3',
    '::1.2.3.4:5',
    'localhost',
  ];
  for (const text of bad) {
    const ip = new ParsedIp();
    t.equal(parseIpInto(text, ip, true), false, JSON.stringify(text));
    t.equal(ip.family, 0, `${JSON.stringify(text)} leaves no family`);
  }
});

t.test('agrees with core canonicalIp on random IPv6 addresses, full and compressed', async (t) => {
  const next = prng(0x5eed);
  for (let i = 0; i < 2000; i++) {
    // Runs of zero groups are common in real addresses, so make about half the groups zero.
    const groups = Array.from({ length: 8 }, () => (next() % 2 === 0 ? 0 : next() % 0x10000));
    const full = groups.map((g) => g.toString(16)).join(':');
    const compressed = canonicalIp(full);
    if (compressed === undefined) throw new Error(`core rejected ${full}`);
    const expected = [
      6,
      groups[0]! * 0x10000 + groups[1]!,
      groups[2]! * 0x10000 + groups[3]!,
      groups[4]! * 0x10000 + groups[5]!,
      groups[6]! * 0x10000 + groups[7]!,
    ];
    const mapped = expected[1] === 0 && expected[2] === 0 && expected[3] === 0xffff;
    const want = mapped ? [4, expected[4], 0, 0, 0] : expected;
    const a = words(parsed(full));
    const b = words(parsed(compressed));
    if (JSON.stringify(a) !== JSON.stringify(want) || JSON.stringify(b) !== JSON.stringify(want)) {
      t.fail(`${full} / ${compressed}: got ${JSON.stringify(a)} and ${JSON.stringify(b)}`);
      return;
    }
  }
  t.pass('2000 addresses');
});

t.test('IPv4 blocks', async (t) => {
  const cases: [string, string, boolean][] = [
    ['10.0.0.0/8', '10.255.1.2', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['10.1.2.3', '10.1.2.3', true],
    ['10.1.2.3', '10.1.2.4', false],
    ['10.1.2.3/32', '10.1.2.3', true],
    ['0.0.0.0/0', '203.0.113.9', true],
    ['128.0.0.0/1', '127.255.255.255', false],
    ['128.0.0.0/1', '128.0.0.0', true],
    ['192.168.1.4/31', '192.168.1.5', true],
    ['192.168.1.4/31', '192.168.1.6', false],
    ['10.9.0.0/16', '10.9.255.255', true],
    ['10.0.0.0/8', '::ffff:10.0.0.1', true],
    ['0.0.0.0/0', 'fd00::1', false],
    ['10.0.0.0/8', 'not-an-ip', false],
  ];
  for (const [cidr, ip, inside] of cases)
    t.equal(cidrContains(block(cidr), parsed(ip)), inside, `${ip} in ${cidr}`);
});

t.test('IPv6 blocks at every word boundary', async (t) => {
  const cases: [string, string, boolean][] = [
    ['::/0', '2001:db8::1', true],
    ['::/0', '10.0.0.1', false],
    ['2001:db8::/32', '2001:db8:ffff::1', true],
    ['2001:db8::/32', '2001:db9::1', false],
    ['2001:db8::/33', '2001:db8:7fff::', true],
    ['2001:db8::/33', '2001:db8:8000::', false],
    ['fd00:1:2:3::/64', 'fd00:1:2:3:ffff:ffff:ffff:ffff', true],
    ['fd00:1:2:3::/64', 'fd00:1:2:4::', false],
    ['fd00::/96', 'fd00::ffff:ffff', true],
    ['fd00::/96', 'fd00::1:0:0', false],
    ['fd00::/127', 'fd00::1', true],
    ['fd00::/127', 'fd00::2', false],
    ['fd00::7', 'fd00::7', true],
    ['fd00::7', 'fd00::8', false],
    ['::ffff:0:0/96', '::ffff:10.0.0.1', false],
  ];
  for (const [cidr, ip, inside] of cases)
    t.equal(cidrContains(block(cidr), parsed(ip)), inside, `${ip} in ${cidr}`);
});
