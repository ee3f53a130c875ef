// ebpf-redirect: transparent capture of pod TCP connections (tc ingress marks + sk_lookup assigns the
// agent's transparent listener from a SOCKMAP; capture.md approach C). The kernel side is
// bpf/capture.bpf.c with its layouts in bpf/weft_capture.h; the native addon loads, attaches and pins.
//
// Start-up order for the agent (node netns, root):
//   1. captureProblems() → refuse to start if non-empty.
//   2. loadAddon().load(CAPTURE_OBJECT_PATH, DEFAULT_PIN_DIR)        reuses pinned maps after a restart
//   3. `ip` steerRoutingArgs() (rule + local route)
//   4. attachSkLookup('/proc/self/ns/net', pinDir); attachTcIngress(ifindex, pinDir) per pod veth + uplink
//   5. listenTransparent(...) ×3 → PinnedMaps.putListener(...) → net.Server#listen({ fd })
//   6. PinnedMaps.enrol(podIp, { outbound, inbound, drain }) as pods come and go
export {
  ADDON_PATH,
  AddonUnavailableError,
  CAPTURE_OBJECT_PATH,
  addonUnavailable,
  connectMarked,
  loadAddon,
  type AddonConstants,
  type LoadResult,
  type MapInfo,
  type ProbeResult,
  type SkLookupAttachment,
  type WeftEbpfAddon,
} from './native.js';
export * from './maps.js';
export { DEFAULT_PIN_DIR, PinnedMaps, removePins } from './pinned-maps.js';
export { ROUTE_TABLE, RULE_PREF, steerRoutingArgs, steerRoutingDeleteArgs } from './routing.js';
export { captureProblems, probeProblems } from './probe.js';
