// The lab's network, made of namespaces and veth pairs (root only). Nothing is created in the root
// namespace: the fabric namespace holds the bridge that joins the nodes, so two labs can run side by
// side with the same addresses, and removing the lab's namespaces removes every link it made.
//
//   fabric ns:  bridge wb<id>  ── ports wf<id>-1 … wf<id>-N
//   node i ns:  wu<id>-i (10.77.0.i/24) ── peer wf<id>-i;  lo: 10.77.i.1/32 (the pods' gateway)
//               routes 10.77.j.0/24 via 10.77.0.j for every other node j
//               per pod: wp<hash> ── peer eth0 in the pod ns;  route <pod IP>/32 dev wp<hash> src 10.77.i.1
//   pod ns:     eth0 <pod IP>/32;  route <gateway> dev eth0;  default via <gateway>
//
// Forwarding is enabled per device (uplink and each pod veth), never globally, as measured in
// ../shared/reference/capture.md. IPv6 is off in every lab namespace: the lab is IPv4-only, and this
// keeps captures on the fabric free of neighbour-discovery chatter.
import { ip } from '../netns.js';
import { POD_INTERFACE } from './names.js';
import type { LabNodePlan, LabPlan } from './plan.js';

/** Told about each namespace and link just before it is created, so a crash cannot orphan it. */
export interface ResourceRecorder {
  netns(name: string): void;
  link(netns: string, name: string): void;
}

function sysctl(netns: string, ...settings: string[]): Promise<string> {
  return ip('netns', 'exec', netns, 'sysctl', '-qw', ...settings);
}

async function addNetns(name: string, record: ResourceRecorder): Promise<void> {
  record.netns(name);
  await ip('netns', 'add', name);
  await ip('-n', name, 'link', 'set', 'lo', 'up');
  await sysctl(name, 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
}

export async function createFabric(plan: LabPlan, record: ResourceRecorder): Promise<void> {
  const { netns, bridge } = plan.fabric;
  await addNetns(netns, record);
  record.link(netns, bridge);
  await ip('-n', netns, 'link', 'add', bridge, 'type', 'bridge');
  await ip('-n', netns, 'link', 'set', bridge, 'up');
}

export async function createNode(plan: LabPlan, node: LabNodePlan, record: ResourceRecorder): Promise<void> {
  await addNetns(node.netns, record);
  record.link(node.netns, node.uplink);
  record.link(plan.fabric.netns, node.fabricPort);
  await ip(
    '-n',
    node.netns,
    'link',
    'add',
    node.uplink,
    'type',
    'veth',
    'peer',
    'name',
    node.fabricPort,
    'netns',
    plan.fabric.netns,
  );
  await ip('-n', plan.fabric.netns, 'link', 'set', node.fabricPort, 'master', plan.fabric.bridge);
  await ip('-n', plan.fabric.netns, 'link', 'set', node.fabricPort, 'up');
  await ip(
    '-n',
    node.netns,
    'addr',
    'add',
    `${node.uplinkIp}/${plan.uplinkCidr.prefixLength}`,
    'dev',
    node.uplink,
  );
  await ip('-n', node.netns, 'link', 'set', node.uplink, 'up');
  await ip('-n', node.netns, 'addr', 'add', `${node.gateway}/32`, 'dev', 'lo');
  await sysctl(node.netns, `net.ipv4.conf.${node.uplink}.forwarding=1`);
  for (const other of plan.nodes) {
    if (other.index === node.index) continue;
    await ip('-n', node.netns, 'route', 'add', other.podCidr.text, 'via', other.uplinkIp, 'dev', node.uplink);
  }
}

export interface PodNetwork {
  readonly netns: string;
  readonly veth: string;
  readonly ip: string;
}

/** The pod's namespace, its veth to the node, its address and routes; undone if any step fails. */
export async function createPodNetwork(
  node: LabNodePlan,
  pod: PodNetwork,
  record: ResourceRecorder,
): Promise<void> {
  try {
    await addNetns(pod.netns, record);
    record.link(node.netns, pod.veth);
    await ip(
      '-n',
      node.netns,
      'link',
      'add',
      pod.veth,
      'type',
      'veth',
      'peer',
      'name',
      POD_INTERFACE,
      'netns',
      pod.netns,
    );
    await ip('-n', pod.netns, 'addr', 'add', `${pod.ip}/32`, 'dev', POD_INTERFACE);
    await ip('-n', pod.netns, 'link', 'set', POD_INTERFACE, 'up');
    await ip('-n', pod.netns, 'route', 'add', node.gateway, 'dev', POD_INTERFACE, 'scope', 'link');
    await ip('-n', pod.netns, 'route', 'add', 'default', 'via', node.gateway, 'dev', POD_INTERFACE);
    await ip('-n', node.netns, 'link', 'set', pod.veth, 'up');
    await sysctl(node.netns, `net.ipv4.conf.${pod.veth}.forwarding=1`);
    await ip('-n', node.netns, 'route', 'add', `${pod.ip}/32`, 'dev', pod.veth, 'src', node.gateway);
  } catch (err) {
    await deletePodNetwork(node, pod);
    throw err;
  }
}

/**
 * Removes the pod's veth (synchronously, so the name is free for a pod created next) and its
 * namespace. Processes in it must be stopped first, or the namespace outlives its name.
 */
export async function deletePodNetwork(node: LabNodePlan, pod: PodNetwork): Promise<void> {
  await ip('-n', node.netns, 'link', 'del', pod.veth).catch(() => undefined);
  await ip('netns', 'del', pod.netns).catch(() => undefined);
}

/** The names of all network namespaces on this machine. */
export async function listNetns(): Promise<string[]> {
  const out = await ip('netns', 'list');
  return out
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

/** Pids of the processes in a namespace (empty when it does not exist). */
export async function netnsPids(name: string): Promise<number[]> {
  const out = await ip('netns', 'pids', name).catch(() => '');
  return out
    .split('\n')
    .filter((line) => /^\d+$/.test(line.trim()))
    .map(Number);
}
