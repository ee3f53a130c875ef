// The shape of one lab, computed from its options before anything is created: names, addresses,
// files. Pure, so the topology, the state file and the CLI all read the same answers.
//
// Addresses, with the default base 10.77:
//   node i uplink   10.77.0.i/24 on `wu<id>-i`, plugged into the fabric bridge
//   node i pods     10.77.i.0/24; gateway 10.77.i.1/32 on the node's lo; pods from .10 up (fixed: .2-.254)
//   services        10.96.0.0/16, ClusterIPs from 10.96.0.10 up
//   CA              node 1's uplink IP, :15012 (gRPC) and :15014 (HTTP)
import { join, resolve } from 'node:path';
import { SELF_SIGNED_FILES } from '../../ca/authority.js';
import type { HostPort } from '../../core/address.js';
import { addressAt, parseIpv4Cidr, type Ipv4Cidr } from './ipam.js';
import {
  bridgeName,
  fabricNetnsName,
  fabricPortName,
  LAB_ID_PATTERN,
  nodeName,
  nodeNetnsName,
  uplinkName,
} from './names.js';

export const DEFAULT_LAB_DIR = '.weft/lab';
export const DEFAULT_NODES = 2;
/** Node i's pods get `<base>.i.0/24`; the uplinks share `<base>.0.0/24`, so 254 nodes at most. */
export const MAX_NODES = 254;
export const DEFAULT_POD_CIDR_BASE = '10.77';
/** Kubernetes' usual default service range. */
export const DEFAULT_SERVICE_CIDR = '10.96.0.0/16';
/** Allocated pod IPs start here, leaving .2-.9 for fixed `status.podIP`s that want short numbers. */
export const FIRST_POD_OFFSET = 10;
/** .0 is the network, .1 the node's gateway: a fixed pod IP may use anything from .2. */
export const FIRST_FIXED_POD_OFFSET = 2;
/** 10.96.0.1 is `kubernetes.default` in a real cluster; start further up, as pod IPs do. */
export const FIRST_SERVICE_OFFSET = 10;
/** The lab directory's folder of admin sockets. */
export const ADMIN_DIR = 'admin';
export const CA_GRPC_PORT = 15012;
export const CA_HTTP_PORT = 15014;

export const STATE_FILE = 'state.json';

export interface LabOptions {
  readonly id: string;
  /** Where the lab keeps its state, manifests, logs and CA; resolved against the working directory. */
  readonly dir: string;
  readonly nodes: number;
  /** Two octets (`10.77`), or the /16 they form (`10.77.0.0/16`). */
  readonly podCidrBase: string;
  readonly serviceCidr: string;
}

export interface LabNodePlan {
  /** 1-based. */
  readonly index: number;
  /** `node-<index>`: what `spec.nodeName` says. */
  readonly name: string;
  readonly netns: string;
  /** The node's end of its uplink veth. */
  readonly uplink: string;
  /** The fabric's end, a port of the bridge. */
  readonly fabricPort: string;
  readonly uplinkIp: string;
  readonly podCidr: Ipv4Cidr;
  /** On the node's lo as /32; every pod routes through it. */
  readonly gateway: string;
  /** The agent's bootstrap token for the CA. */
  readonly tokenFile: string;
  readonly agentLog: string;
  /** The agent's admin endpoints as a Unix socket, reachable from the root namespace (`weft observe`). */
  readonly agentAdminSocket: string;
}

export interface LabPlan {
  readonly id: string;
  readonly dir: string;
  readonly stateFile: string;
  readonly manifestsDir: string;
  readonly logsDir: string;
  readonly podLogsDir: string;
  readonly caDir: string;
  readonly tokensDir: string;
  /** Unix sockets of the agents' and waypoints' admin endpoints (`weft observe` reads flows there). */
  readonly adminDir: string;
  readonly controllerLog: string;
  readonly fabric: { readonly netns: string; readonly bridge: string };
  readonly nodes: readonly LabNodePlan[];
  readonly uplinkCidr: Ipv4Cidr;
  readonly serviceCidr: Ipv4Cidr;
  readonly ca: {
    /** Index into `nodes`. */
    readonly nodeIndex: number;
    readonly grpc: HostPort;
    readonly http: HostPort;
    readonly rootCertFile: string;
    readonly log: string;
  };
}

/** Why `options` cannot make a lab, or undefined. */
export function labOptionsProblem(options: LabOptions): string | undefined {
  if (!LAB_ID_PATTERN.test(options.id))
    return `lab id must be 1-6 of [a-z0-9], got ${JSON.stringify(options.id)}`;
  if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > MAX_NODES)
    return `--nodes must be 1-${MAX_NODES}, got ${options.nodes}`;
  if (parsePodCidrBase(options.podCidrBase) === undefined)
    return `--pod-cidr-base must be two octets like 10.77 (or 10.77.0.0/16), got ${JSON.stringify(options.podCidrBase)}`;
  const service = parseIpv4Cidr(options.serviceCidr);
  if (service === undefined || service.prefixLength > 28)
    return `--service-cidr must be an IPv4 CIDR of /28 or larger, got ${JSON.stringify(options.serviceCidr)}`;
  return undefined;
}

/** `10.77` or `10.77.0.0/16` -> [10, 77]. */
export function parsePodCidrBase(text: string): readonly [number, number] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})(?:\.0\.0\/16)?$/.exec(text);
  if (!m) return undefined;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a <= 255 && b <= 255 ? [a, b] : undefined;
}

export function planLab(options: LabOptions): LabPlan {
  const problem = labOptionsProblem(options);
  if (problem !== undefined) throw new Error(problem);
  const [a, b] = parsePodCidrBase(options.podCidrBase)!;
  const dir = resolve(options.dir);
  const logsDir = join(dir, 'logs');
  const tokensDir = join(dir, 'tokens');
  const caDir = join(dir, 'ca');
  const adminDir = join(dir, ADMIN_DIR);
  const uplinkCidr = parseIpv4Cidr(`${a}.${b}.0.0/24`)!;
  const nodes = Array.from({ length: options.nodes }, (_, i): LabNodePlan => {
    const index = i + 1;
    const podCidr = parseIpv4Cidr(`${a}.${b}.${index}.0/24`)!;
    const name = nodeName(index);
    return {
      index,
      name,
      netns: nodeNetnsName(options.id, index),
      uplink: uplinkName(options.id, index),
      fabricPort: fabricPortName(options.id, index),
      uplinkIp: addressAt(uplinkCidr, index),
      podCidr,
      gateway: addressAt(podCidr, 1),
      tokenFile: join(tokensDir, `${name}.token`),
      agentLog: join(logsDir, `agent-${name}.log`),
      agentAdminSocket: join(adminDir, `agent-${name}.sock`),
    };
  });
  const caNode = nodes[0]!;
  return {
    id: options.id,
    dir,
    stateFile: join(dir, STATE_FILE),
    manifestsDir: join(dir, 'manifests'),
    logsDir,
    podLogsDir: join(logsDir, 'pods'),
    caDir,
    tokensDir,
    adminDir,
    controllerLog: join(logsDir, 'controller.log'),
    fabric: { netns: fabricNetnsName(options.id), bridge: bridgeName(options.id) },
    nodes,
    uplinkCidr,
    serviceCidr: parseIpv4Cidr(options.serviceCidr)!,
    ca: {
      nodeIndex: 0,
      grpc: { host: caNode.uplinkIp, port: CA_GRPC_PORT },
      http: { host: caNode.uplinkIp, port: CA_HTTP_PORT },
      rootCertFile: join(caDir, SELF_SIGNED_FILES.cert),
      log: join(logsDir, 'ca.log'),
    },
  };
}

export function labNode(plan: LabPlan, name: string): LabNodePlan | undefined {
  return plan.nodes.find((n) => n.name === name);
}
