// lab/cluster/plan.ts, names.ts and ipam.ts: the lab's names and addresses, before anything exists.
import t from 'tap';
import { allocateAddress, cidrContains, parseIpv4Cidr } from '../../../lab/cluster/ipam.js';
import { MAX_LINK_NAME, podNetnsName, podVethName } from '../../../lab/cluster/names.js';
import { labOptionsProblem, planLab, type LabOptions } from '../../../lab/cluster/plan.js';

const OPTIONS: LabOptions = {
  id: 'abc123',
  dir: '/tmp/weft-plan-test',
  nodes: 3,
  podCidrBase: '10.77',
  serviceCidr: '10.96.0.0/16',
};

t.test('podVethName: fits IFNAMSIZ, is derived from the pod alone, differs between pods', async (t) => {
  t.plan(5);
  const a = podVethName('default', 'echo-v1');
  t.equal(a, podVethName('default', 'echo-v1'), 'deterministic');
  t.match(a, /^wp[0-9a-f]{13}$/);
  t.ok(a.length <= MAX_LINK_NAME, `${a} fits in ${MAX_LINK_NAME}`);
  t.not(a, podVethName('default', 'echo-v2'));
  t.not(podVethName('a', 'b-c'), podVethName('a-b', 'c'), 'the namespace/name boundary counts');
});

t.test('pod namespaces carry the lab id; very long names are hashed', async (t) => {
  t.plan(3);
  t.equal(podNetnsName('abc123', 'default', 'client'), 'weft-abc123-pod-default.client');
  const long = podNetnsName('abc123', 'n'.repeat(63), 'p'.repeat(253));
  t.ok(long.startsWith('weft-abc123-pod-'));
  t.ok(long.length <= 200);
});

t.test('planLab: one /24 of pods per node, uplinks in .0, CA on node 1, link names fit', async (t) => {
  const plan = planLab(OPTIONS);
  t.plan(11);
  t.equal(plan.nodes.length, 3);
  t.same(
    plan.nodes.map((n) => [n.name, n.uplinkIp, n.podCidr.text, n.gateway]),
    [
      ['node-1', '10.77.0.1', '10.77.1.0/24', '10.77.1.1'],
      ['node-2', '10.77.0.2', '10.77.2.0/24', '10.77.2.1'],
      ['node-3', '10.77.0.3', '10.77.3.0/24', '10.77.3.1'],
    ],
  );
  t.equal(plan.nodes[0]!.netns, 'weft-abc123-node-1');
  t.equal(plan.fabric.netns, 'weft-abc123-fabric');
  t.same(
    [plan.ca.grpc, plan.ca.http],
    [
      { host: '10.77.0.1', port: 15012 },
      { host: '10.77.0.1', port: 15014 },
    ],
  );
  const links = [plan.fabric.bridge, ...plan.nodes.flatMap((n) => [n.uplink, n.fabricPort])];
  t.ok(
    links.every((l) => l.length <= MAX_LINK_NAME && l.includes('abc123')),
    `${links.join(' ')}`,
  );
  t.equal(plan.manifestsDir, '/tmp/weft-plan-test/manifests');
  t.equal(plan.stateFile, '/tmp/weft-plan-test/state.json');
  const other = planLab({ ...OPTIONS, podCidrBase: '10.200.0.0/16', nodes: 2 });
  t.equal(other.nodes[1]!.podCidr.text, '10.200.2.0/24', 'the base is configurable');
  const maxId = planLab({ ...OPTIONS, id: 'zzzzzz', nodes: 254 });
  t.ok(
    maxId.nodes.every((n) => n.uplink.length <= MAX_LINK_NAME),
    'the longest id with 254 nodes still fits',
  );
  t.equal(maxId.nodes[253]!.uplinkIp, '10.77.0.254');
});

t.test('labOptionsProblem names the bad option', async (t) => {
  t.plan(5);
  t.equal(labOptionsProblem(OPTIONS), undefined);
  t.match(labOptionsProblem({ ...OPTIONS, nodes: 0 }), /--nodes must be 1-254, got 0/);
  t.match(labOptionsProblem({ ...OPTIONS, podCidrBase: '10.300' }), /--pod-cidr-base/);
  t.match(labOptionsProblem({ ...OPTIONS, serviceCidr: '10.96.0.1/16' }), /--service-cidr/);
  t.match(labOptionsProblem({ ...OPTIONS, id: 'Has-Caps' }), /lab id/);
});

t.test('ipam: next free address, skipping used ones and the broadcast address', async (t) => {
  t.plan(7);
  const cidr = parseIpv4Cidr('10.77.1.0/24')!;
  t.equal(allocateAddress(cidr, new Set(), 10), '10.77.1.10');
  t.equal(allocateAddress(cidr, new Set(['10.77.1.10', '10.77.1.11']), 10), '10.77.1.12');
  const full = new Set(Array.from({ length: 254 }, (_, i) => `10.77.1.${i + 1}`));
  t.equal(allocateAddress(cidr, full, 1), undefined, 'full block');
  t.equal(
    allocateAddress(parseIpv4Cidr('10.0.0.0/30')!, new Set(['10.0.0.1', '10.0.0.2']), 1),
    undefined,
    '.3 is broadcast',
  );
  t.ok(cidrContains(cidr, '10.77.1.254'));
  t.notOk(cidrContains(cidr, '10.77.2.1'));
  t.equal(parseIpv4Cidr('10.77.1.5/24'), undefined, 'host bits set');
});
