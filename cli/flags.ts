// Typed reading of command-line flags: each bad value is an error naming the flag.
import { hostname } from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseHostPort, type HostPort } from '../core/address.js';
import { parseGatewayDuration } from '../core/convert/duration.js';
import type { GrpcCaClientOptions } from '../core/identity/ca-client.js';

export class UsageError extends Error {
  override name = 'UsageError';
}

export type FlagSpec = NonNullable<ParseArgsConfig['options']>;

export function parseFlags(argv: string[], options: FlagSpec): Record<string, string | boolean | undefined> {
  try {
    const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
    return values as Record<string, string | boolean | undefined>;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Like parseFlags, also returning positional arguments (e.g. `weft apply -f A B`). */
export function parseFlagsAndArgs(
  argv: string[],
  options: FlagSpec,
): { values: Record<string, unknown>; positionals: string[] } {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function stringFlag(values: Record<string, unknown>, name: string, fallback?: string): string {
  const v = values[name];
  if (typeof v === 'string' && v !== '') return v;
  if (fallback !== undefined) return fallback;
  throw new UsageError(`--${name} is required`);
}

export function hostPortFlag(values: Record<string, unknown>, name: string, fallback: string): HostPort {
  return parseHostPort(stringFlag(values, name, fallback), `--${name}`);
}

/** A listen address, or null when the flag is `off`. */
export function optionalHostPortFlag(
  values: Record<string, unknown>,
  name: string,
  fallback: string,
): HostPort | null {
  return values[name] === 'off' ? null : hostPortFlag(values, name, fallback);
}

/** Durations as `500ms`, `10s`, `2m` (the Gateway API form) or plain seconds; in milliseconds. */
export function durationMsFlag(values: Record<string, unknown>, name: string, fallbackMs: number): number {
  const v = values[name];
  if (typeof v !== 'string') return fallbackMs;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const ms = parseGatewayDuration(v);
  if (ms === undefined) throw new UsageError(`--${name}: expected a duration like 10s or 500ms, got ${v}`);
  return ms;
}

/** Durations in whole seconds (`24h`, `90m`, `3600s` or plain seconds). */
export function durationSecondsFlag(
  values: Record<string, unknown>,
  name: string,
  fallbackSeconds: number,
): number {
  const ms = durationMsFlag(values, name, fallbackSeconds * 1000);
  if (ms % 1000 !== 0) throw new UsageError(`--${name}: expected whole seconds, got ${String(values[name])}`);
  return ms / 1000;
}

/** A whole number of at least `min` (`fallback` when the flag is absent). */
export function countFlag(values: Record<string, unknown>, name: string, fallback: number, min = 0): number {
  const v = values[name];
  if (typeof v !== 'string') return fallback;
  if (!/^\d+$/.test(v) || Number(v) < min)
    throw new UsageError(`--${name}: expected a count${min > 0 ? ` of at least ${min}` : ''}, got ${v}`);
  return Number(v);
}

export function listFlag(
  values: Record<string, unknown>,
  name: string,
  fallback: readonly string[],
): string[] {
  const v = values[name];
  if (typeof v !== 'string') return [...fallback];
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Resolves when SIGINT or SIGTERM arrives. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => resolve(sig);
    process.once('SIGINT', on);
    process.once('SIGTERM', on);
  });
}

/** How long a stopping process waits for its parts to close before exiting anyway. */
export const CLOSE_DEADLINE_MS = 5_000;

/** Runs `close`, but gives up waiting after `deadlineMs` (a stop must not hang on one stuck handle). */
export async function closeWithin(close: () => Promise<void>, deadlineMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([close(), new Promise<void>((resolve) => (timer = setTimeout(resolve, deadlineMs)))]);
  clearTimeout(timer);
}

/** The flags every part that asks the CA for certificates takes (agent, waypoint). */
export const CA_CLIENT_FLAGS: FlagSpec = {
  'ca-address': { type: 'string' },
  'ca-root': { type: 'string' },
  'ca-server-name': { type: 'string' },
  'token-file': { type: 'string' },
};

/** How to reach the CA, from CA_CLIENT_FLAGS; `defaultAddress` when --ca-address is absent. */
export function caClientFlags(values: Record<string, unknown>, defaultAddress: string): GrpcCaClientOptions {
  return {
    address: hostPortFlag(values, 'ca-address', defaultAddress),
    rootCertFile: stringFlag(values, 'ca-root'),
    tokenFile: stringFlag(values, 'token-file'),
    serverName: typeof values['ca-server-name'] === 'string' ? values['ca-server-name'] : undefined,
  };
}

/**
 * This replica's name among its peers (a Lease holderIdentity): `--id`, else the pod name the downward
 * API puts in POD_NAME, else the host name (a pod's host name is its name).
 */
export function replicaIdentityFlag(f: Record<string, unknown>): string {
  const given = f.id;
  if (typeof given === 'string' && given !== '') return given;
  return process.env.POD_NAME || hostname();
}

/** The observability flags the agent and the waypoint share. */
export const FLOW_FLAGS: FlagSpec = {
  'admin-socket': { type: 'string' },
  'flow-buffer': { type: 'string' },
};
export const FLOW_FLAGS_USAGE = '[--admin-socket PATH] [--flow-buffer 4096]';

/** `--admin-socket` (a Unix socket for the admin endpoints) and `--flow-buffer` (flow events kept). */
export function flowFlags(values: Record<string, unknown>): { adminSocket?: string; flowBuffer?: number } {
  const out: { adminSocket?: string; flowBuffer?: number } = {};
  if (typeof values['admin-socket'] === 'string') out.adminSocket = values['admin-socket'];
  const buffer = values['flow-buffer'];
  if (typeof buffer === 'string') {
    const n = Number(buffer);
    if (!Number.isInteger(n) || n < 1 || n > 1_000_000)
      throw new UsageError(`--flow-buffer: expected a count of events from 1 to 1000000, got ${buffer}`);
    out.flowBuffer = n;
  }
  return out;
}
