// Whether this kernel and process can capture: the agent refuses to start with these reasons rather
// than run without capture (an enrolled pod's traffic would then leave in plaintext).
import { loadAddon, type ProbeResult } from './native.js';

/** Reasons capture cannot work, from a raw probe; empty when everything is there. */
export function probeProblems(p: ProbeResult): string[] {
  const problems: string[] = [];
  if (!p.bpffs) problems.push(`no bpf filesystem at ${p.bpffsPath} (mount -t bpf bpf ${p.bpffsPath})`);
  if (!p.progTc)
    problems.push('BPF tc (sched_cls) programs are not supported or not permitted (CAP_BPF/CAP_NET_ADMIN)');
  if (!p.helperSkcLookupTcp) problems.push('the bpf_skc_lookup_tcp helper is missing (kernel ≥ 5.2 needed)');
  if (!p.progSkLookup) problems.push('BPF sk_lookup programs are not supported (kernel ≥ 5.9 needed)');
  if (!p.helperSkAssign) problems.push('bpf_sk_assign is not available to sk_lookup programs');
  if (!p.mapSockmap) problems.push('SOCKMAP maps are not supported');
  if (!p.tcClsact)
    problems.push('the clsact qdisc cannot be created (CONFIG_NET_SCH_INGRESS, CAP_NET_ADMIN)');
  if (!p.transparentSockets) problems.push('IP_TRANSPARENT sockets are not permitted (CAP_NET_ADMIN needed)');
  return problems;
}

/** Probes this process's kernel and privileges; the addon's absence is itself a problem. */
export function captureProblems(bpffsPath = '/sys/fs/bpf'): string[] {
  let result: ProbeResult;
  try {
    result = loadAddon().probe(bpffsPath);
  } catch (err) {
    return [(err as Error).message];
  }
  return probeProblems(result);
}
