// The addon from Node: constants agree with maps.ts, the sockets work with net, load() pins and
// re-opens maps and refuses another layout. Needs the built addon; the kernel parts need root and a
// bpf filesystem (a private mount, so nothing is left behind). Skips with the reason elsewhere,
// fails under CI.
import t from 'tap';
import { once } from 'node:events';
import { mkdtempSync, rmdirSync, existsSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  addonUnavailable,
  CAPTURE_OBJECT_PATH,
  connectMarked,
  loadAddon,
} from '../../ebpf-redirect/native.js';
import {
  CONFIG_SIZE,
  DEFAULT_CONFIG,
  encodeConfig,
  indexKey,
  LAYOUT_VERSION,
  MARK,
  STAT_NAMES,
} from '../../ebpf-redirect/maps.js';
import { ROUTE_TABLE, RULE_PREF } from '../../ebpf-redirect/routing.js';
import { probeProblems } from '../../ebpf-redirect/probe.js';
import { sh, skipOrFail } from './capture-lab.js';

const noAddon = skipOrFail(t, addonUnavailable());
const noRoot =
  noAddon ||
  skipOrFail(t, process.getuid?.() === 0 ? undefined : 'needs root (IP_TRANSPARENT, SO_MARK, bpf)');

t.test('constants compiled into the addon match maps.ts and routing.ts', { skip: noAddon }, async (t) => {
  const c = loadAddon().constants;
  t.equal(c.layoutVersion, LAYOUT_VERSION);
  t.same([c.markSteer, c.markOnward, c.markMask], [MARK.steer, MARK.onward, MARK.mask]);
  t.same([c.routeTable, c.rulePref], [ROUTE_TABLE, RULE_PREF]);
  t.equal(c.configSize, CONFIG_SIZE);
  t.ok(c.statCount >= STAT_NAMES.length, 'every named counter has a slot');
  t.not((MARK.onward & MARK.mask) === MARK.steer, true, 'the onward mark never matches the steer rule');
});

t.test('arguments are checked before any syscall', { skip: noAddon }, async (t) => {
  const addon = loadAddon();
  t.throws(() => addon.listenTransparent('not-an-ip', 1, 1), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => addon.listenTransparent('127.0.0.1', 70000, 1), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => addon.socketWithMark(-1), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => addon.mapUpdate('/nonexistent/map', Buffer.alloc(4), Buffer.alloc(4)), { code: 'ENOENT' });
  t.throws(() => addon.ifNameToIndex('nosuchif0'), { code: 'ENODEV' });
  t.throws(() => addon.attachTcIngress(addon.ifNameToIndex('lo'), '/nonexistent'), {
    code: 'ERR_WEFT_NOT_ETHERNET',
    message: /lo is not an Ethernet device/,
  });
});

t.test('transparent listener and marked onward socket work with net', { skip: noRoot }, async (t) => {
  const addon = loadAddon();
  const server = createServer().listen({ fd: addon.listenTransparent('127.0.0.1', 0, 16) });
  t.teardown(() => server.close());
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = await connectMarked('127.0.0.1', port, { mark: MARK.onward });
  t.teardown(() => client.destroy());
  const [peer] = await accepted;
  t.equal(peer.remotePort, client.localPort, 'the listener accepted the marked socket');
  const ss = await sh('ss', '-Htne', 'state', 'established', `( dport = :${port} )`);
  t.match(ss, `fwmark:0x${MARK.onward.toString(16)}`, 'SO_MARK is set on the onward socket');
  peer.end('pong');
  client.setEncoding('utf8');
  const [data] = (await once(client, 'data')) as [string];
  t.equal(data, 'pong', 'bytes flow through the adopted fd');
  peer.destroy();
});

t.test('connectMarked rejects with the errno of a failed connect', { skip: noRoot }, async (t) => {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await t.rejects(connectMarked('127.0.0.1', port, { mark: MARK.onward }), { code: 'ECONNREFUSED' });
});

t.test('load pins maps and programs, re-opens them, refuses another layout', { skip: noRoot }, async (t) => {
  const addon = loadAddon();
  const bpffs = mkdtempSync(join(tmpdir(), 'weft-bpffs-'));
  t.teardown(() => rmdirSync(bpffs));
  await sh('mount', '-t', 'bpf', 'bpf', bpffs);
  t.teardown(() => sh('umount', bpffs));
  const pinDir = join(bpffs, 'weft', `v${LAYOUT_VERSION}`);

  const first = addon.load(CAPTURE_OBJECT_PATH, pinDir);
  t.same([...first.createdMaps].sort(), ['config', 'enrolled', 'listeners', 'probe', 'stats']);
  t.same(first.reusedMaps, []);
  t.ok(
    existsSync(join(pinDir, 'prog_tc_ingress')) && existsSync(join(pinDir, 'prog_sk_lookup')),
    'programs pinned',
  );
  t.equal(addon.mapInfo(join(pinDir, 'enrolled')).maxEntries, 8192);

  addon.mapUpdate(join(pinDir, 'enrolled'), Buffer.from([10, 0, 0, 9]), Buffer.from([1, 0, 0, 0]));
  const second = addon.load(CAPTURE_OBJECT_PATH, pinDir);
  t.same(
    [...second.reusedMaps].sort(),
    ['config', 'enrolled', 'listeners', 'probe', 'stats'],
    'restart re-opens',
  );
  t.ok(addon.mapLookup(join(pinDir, 'enrolled'), Buffer.from([10, 0, 0, 9])), 'and keeps the state');
  t.equal(addon.mapKeys(join(pinDir, 'enrolled')).length, 1);

  addon.mapUpdate(
    join(pinDir, 'config'),
    indexKey(0),
    encodeConfig({ ...DEFAULT_CONFIG, layoutVersion: 99 }),
  );
  t.throws(() => addon.load(CAPTURE_OBJECT_PATH, pinDir), {
    code: 'ERR_WEFT_LAYOUT',
    message: /layout version 99, this object has 1/,
  });

  const notBpffs = join(tmpdir(), `weft-not-bpffs-${process.pid}`, 'v1');
  t.throws(() => addon.load(CAPTURE_OBJECT_PATH, notBpffs), {
    code: 'ERR_WEFT_NO_BPFFS',
    message: /is not on a bpf filesystem/,
  });
  t.notOk(existsSync(notBpffs), 'nothing is created outside bpffs');
});

t.test('probe reports what this kernel can do', { skip: noRoot }, async (t) => {
  const bpffs = mkdtempSync(join(tmpdir(), 'weft-bpffs-'));
  t.teardown(() => rmdirSync(bpffs));
  const without = loadAddon().probe(bpffs);
  t.equal(without.bpffs, false);
  t.match(probeProblems(without).join('\n'), /no bpf filesystem at/);
  await sh('mount', '-t', 'bpf', 'bpf', bpffs);
  t.teardown(() => sh('umount', bpffs));
  const result = loadAddon().probe(bpffs);
  t.same(probeProblems(result), [], `nothing missing on ${result.kernel}`);
});
