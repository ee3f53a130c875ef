// Every name the lab gives to something outside its own files. Names that live in machine-wide
// namespaces (network namespace names in /run/netns, pinned BPF paths) start with `weft-<id>-`, so
// `weft lab down` finds what one lab made even when its state file is gone, and never touches another
// lab's. Link names must fit IFNAMSIZ (15 characters); they live inside the lab's own network
// namespaces, and the ones that connect nodes carry the id too.
import { createHash, randomBytes } from 'node:crypto';

/** Linux interface names are at most 15 bytes (IFNAMSIZ 16 with the NUL). */
export const MAX_LINK_NAME = 15;
/** Lab ids are short: they go into interface names (`wu<id>-<node>` must fit in 15). */
export const LAB_ID_PATTERN = /^[a-z0-9]{1,6}$/;
/** Network namespace names are files in /run/netns; leave room below NAME_MAX (255). */
const MAX_NETNS_NAME = 200;
/** 13 hex digits (52 bits) after `wp`: a collision among the pods of one node is not a practical worry. */
const POD_VETH_HASH_DIGITS = MAX_LINK_NAME - 2;

export function newLabId(): string {
  return randomBytes(3).toString('hex');
}

/** The prefix of every network namespace of lab `id`. */
export function labNetnsPrefix(id: string): string {
  return `weft-${id}-`;
}

export function fabricNetnsName(id: string): string {
  return `${labNetnsPrefix(id)}fabric`;
}

export function nodeName(index: number): string {
  return `node-${index}`;
}

export function nodeNetnsName(id: string, index: number): string {
  return `${labNetnsPrefix(id)}${nodeName(index)}`;
}

/** `weft-<id>-pod-<namespace>.<name>`, or a hash of the two when that would be too long for a file name. */
export function podNetnsName(id: string, namespace: string, podName: string): string {
  const readable = `${labNetnsPrefix(id)}pod-${namespace}.${podName}`;
  if (readable.length <= MAX_NETNS_NAME) return readable;
  return `${labNetnsPrefix(id)}pod-${hashHex(`${namespace}/${podName}`, 16)}`;
}

/** The Linux bridge in the fabric namespace that every node's uplink plugs into. */
export function bridgeName(id: string): string {
  return `wb${id}`;
}

/** A node's end of its uplink veth (in the node's namespace); it carries the node's uplink IP. */
export function uplinkName(id: string, index: number): string {
  return `wu${id}-${index}`;
}

/** The fabric's end of node `index`'s uplink veth, a port of the bridge. */
export function fabricPortName(id: string, index: number): string {
  return `wf${id}-${index}`;
}

/**
 * The host-side (node-side) veth of a pod: `wp` + 13 hex digits of SHA-256(`<namespace>/<name>`). It
 * lives in the pod's node namespace, so it needs no lab id; anything that knows a pod (the capture
 * attach, tcpdump users) can derive it. The pod's own end is always `eth0`.
 */
export function podVethName(namespace: string, podName: string): string {
  return `wp${hashHex(`${namespace}/${podName}`, POD_VETH_HASH_DIGITS)}`;
}

/**
 * Where lab `id` should pin BPF objects (bpffs is one per machine, so the path carries the id). Pins
 * go away with `weft lab down` once their directory is recorded in the state's `bpfPinDirs`.
 */
export function labBpfPinRoot(id: string): string {
  return `/sys/fs/bpf/weft-${id}`;
}

/** The pod's end of its veth, inside the pod namespace. */
export const POD_INTERFACE = 'eth0';

function hashHex(text: string, digits: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, digits);
}
