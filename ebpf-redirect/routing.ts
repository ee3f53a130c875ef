// The policy routing the steer mark needs (capture.md §2: without it marked packets die in ip_forward).
// Pure data: the agent runs these with `ip` in the node's network namespace. One rule, one route:
//   ip rule add fwmark 0x5a1/0xfff lookup 1441 pref 1441
//   ip route add local 0.0.0.0/0 dev lo table 1441
import { MARK } from './maps.js';

export const ROUTE_TABLE = 1441;
export const RULE_PREF = 1441;

const hex = (n: number) => `0x${n.toString(16)}`;

/** `ip` arguments that install the steer routing (run `del` variants first to make it idempotent). */
export function steerRoutingArgs(): { readonly rule: readonly string[]; readonly route: readonly string[] } {
  return {
    rule: [
      'rule',
      'add',
      'fwmark',
      `${hex(MARK.steer)}/${hex(MARK.mask)}`,
      'lookup',
      `${ROUTE_TABLE}`,
      'pref',
      `${RULE_PREF}`,
    ],
    route: ['route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', `${ROUTE_TABLE}`],
  };
}

/** `ip` arguments that remove it again (each may fail with "No such file" when already gone). */
export function steerRoutingDeleteArgs(): {
  readonly rule: readonly string[];
  readonly route: readonly string[];
} {
  return {
    rule: ['rule', 'del', 'pref', `${RULE_PREF}`],
    route: ['route', 'del', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', `${ROUTE_TABLE}`],
  };
}
