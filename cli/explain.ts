// `weft explain`: what the mesh would do with one flow, from config alone (explain/explain.ts), read from
// the running lab's manifest folder, a folder of manifests, or the Kubernetes API, once. Nothing is sent.
// Exit status 0 whenever the flow could be explained, whatever the verdict (scripts read `-o json`).
import { formatRejection } from '../core/convert/index.js';
import { createConfigSource } from '../core/sources/index.js';
import { DEFAULT_TRUST_DOMAIN } from '../core/spiffe.js';
import { ConfigStore } from '../core/store.js';
import { explainFlow } from '../explain/explain.js';
import type { ExplainDestination, ExplainHttp, ExplainQuery, ExplainSource } from '../explain/query.js';
import { renderExplanation } from '../explain/render.js';
import { activeSource } from '../lab/cluster/apply.js';
import { labDirFlag } from './lab-dir.js';
import { parseFlagsAndArgs, UsageError, type FlagSpec } from './flags.js';
import { readFolderConfig, type CommandIo } from './waypoint.js';

export const EXPLAIN_USAGE = `weft explain (--from NS/POD | --from-identity ID --from-ip IP | --from-ip IP)
               (--to NS/POD | --to-service NS/NAME | --to-ip IP) --port N
               [--method GET] [--path /] [--host HOST] [--header 'NAME: VALUE']…
               [--dir DIR | --manifests DIR | --config file:DIR|kubernetes[:KUBECONFIG]]
               [--trust-domain ${DEFAULT_TRUST_DOMAIN}] [-o text|json]
               the path a flow takes (direct, tunnel, waypoint), the PeerAuthentication and
               AuthorizationPolicies that apply in evaluation order, and the verdict with the deciding
               rule, from config alone: no traffic is sent. --from-identity is a mesh client
               (spiffe://TD/ns/NS/sa/SA or TD/ns/NS/sa/SA) at --from-ip; --from-ip alone is plaintext
               from outside the mesh. --port is the Service port for --to-service, else the pod's`;

const PROCESS_IO: CommandIo = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
};

/** Where the config comes from (loadConfig); shared with the commands that consult it. */
export const CONFIG_FLAGS: FlagSpec = {
  dir: { type: 'string' },
  manifests: { type: 'string' },
  config: { type: 'string' },
};

const FLAGS: FlagSpec = {
  ...CONFIG_FLAGS,
  from: { type: 'string' },
  'from-identity': { type: 'string' },
  'from-ip': { type: 'string' },
  to: { type: 'string' },
  'to-service': { type: 'string' },
  'to-ip': { type: 'string' },
  port: { type: 'string' },
  method: { type: 'string' },
  path: { type: 'string' },
  host: { type: 'string' },
  header: { type: 'string', multiple: true },
  'trust-domain': { type: 'string' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
};

export async function explainCommand(argv: string[], io: CommandIo = PROCESS_IO): Promise<number> {
  const { values, positionals } = parseFlagsAndArgs(argv, FLAGS);
  if (values.help === true) {
    io.out(EXPLAIN_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected ${positionals.join(' ')}\n\n${EXPLAIN_USAGE}`);
  const json = jsonOutput(values.output);
  const query = queryOf(values);
  const trustDomain =
    typeof values['trust-domain'] === 'string' ? values['trust-domain'] : DEFAULT_TRUST_DOMAIN;
  const store = await loadConfig(values);
  const rejected = store.allRejections();
  if (rejected.length > 0) {
    io.err(`weft: warning: ${rejected.length} object(s) rejected by the config source are not part of this:`);
    for (const r of rejected) io.err(`  ${formatRejection(r)}`);
  }
  const explanation = explainFlow(store, query, { trustDomain });
  if (json) io.out(JSON.stringify(explanation, null, 2));
  else for (const line of renderExplanation(explanation)) io.out(line);
  return 0;
}

function jsonOutput(output: unknown): boolean {
  if (output === undefined || output === 'text') return false;
  if (output === 'json') return true;
  throw new UsageError(`--output must be text or json, got ${JSON.stringify(output)}`);
}

/** The query the flags describe; each bad or missing flag is a UsageError naming it. */
export function queryOf(values: Record<string, unknown>): ExplainQuery {
  const http = httpOf(values);
  return {
    source: sourceOf(values),
    destination: destinationOf(values),
    port: portOf(values.port),
    ...(http && { http }),
  };
}

function text(values: Record<string, unknown>, name: string): string | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} needs a value`);
  return v;
}

function sourceOf(values: Record<string, unknown>): ExplainSource {
  const from = text(values, 'from');
  const identity = text(values, 'from-identity');
  const ip = text(values, 'from-ip');
  if (from !== undefined) {
    if (identity !== undefined || ip !== undefined)
      throw new UsageError(
        '--from names a pod: give it alone, or --from-identity with --from-ip, or --from-ip',
      );
    return { kind: 'workload', ...namespaced('from', from) };
  }
  if (identity !== undefined) {
    if (ip === undefined)
      throw new UsageError('--from-identity needs --from-ip: the address the client uses');
    return { kind: 'identity', identity, ip };
  }
  if (ip !== undefined) return { kind: 'address', ip };
  throw new UsageError(
    `the source is required: --from NS/POD, --from-identity ID --from-ip IP, or --from-ip IP`,
  );
}

function destinationOf(values: Record<string, unknown>): ExplainDestination {
  const given = (['to', 'to-service', 'to-ip'] as const).filter((name) => values[name] !== undefined);
  if (given.length !== 1)
    throw new UsageError(
      given.length === 0
        ? 'the destination is required: --to NS/POD, --to-service NS/NAME or --to-ip IP'
        : `give one destination, not ${given.map((name) => `--${name}`).join(' and ')}`,
    );
  const name = given[0]!;
  const value = text(values, name)!;
  if (name === 'to') return { kind: 'workload', ...namespaced(name, value) };
  if (name === 'to-service') return { kind: 'service', ...namespaced(name, value) };
  return { kind: 'address', ip: value };
}

function namespaced(flag: string, value: string): { namespace: string; name: string } {
  const parts = value.split('/');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '')
    throw new UsageError(`--${flag}: expected NAMESPACE/NAME, got ${JSON.stringify(value)}`);
  return { namespace: parts[0]!, name: parts[1]! };
}

function portOf(value: unknown): number {
  if (value === undefined) throw new UsageError('--port is required');
  const port = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(port >= 1 && port <= 65535))
    throw new UsageError(`--port: expected 1-65535, got ${JSON.stringify(value)}`);
  return port;
}

/** The HTTP request when any of its flags is given; undefined means "explain as TCP unless declared HTTP". */
function httpOf(values: Record<string, unknown>): ExplainHttp | undefined {
  const method = text(values, 'method');
  const path = text(values, 'path');
  const host = text(values, 'host');
  const headers = ((values.header as string[] | undefined) ?? []).map(headerOf);
  if (method === undefined && path === undefined && host === undefined && headers.length === 0)
    return undefined;
  if (path !== undefined && !path.startsWith('/'))
    throw new UsageError(`--path: expected a path starting with /, got ${JSON.stringify(path)}`);
  return {
    ...(method !== undefined && { method }),
    ...(path !== undefined && { path }),
    ...(host !== undefined && { host }),
    ...(headers.length > 0 && { headers }),
  };
}

function headerOf(value: string): [string, string] {
  const colon = value.indexOf(':');
  const name = colon < 0 ? '' : value.slice(0, colon).trim();
  if (name === '' || /\s/.test(name))
    throw new UsageError(`--header: expected 'NAME: VALUE', got ${JSON.stringify(value)}`);
  return [name, value.slice(colon + 1).trim()];
}

/**
 * The config CONFIG_FLAGS name, read once: `--manifests DIR` or `--config file:DIR` by the file source's
 * rules, `--config kubernetes[:KUBECONFIG]` by one list of every kind, else the lab's manifest folder
 * (`--dir`). Both --manifests and --config is a UsageError; an unreadable source throws.
 */
export async function loadConfig(values: Record<string, unknown>): Promise<ConfigStore> {
  const manifests = text(values, 'manifests');
  const config = text(values, 'config');
  if (manifests !== undefined && config !== undefined)
    throw new UsageError('give --manifests DIR or --config SOURCE, not both');
  if (manifests !== undefined) return readFolderConfig(manifests).store;
  if (config !== undefined && !config.startsWith('file:')) {
    const source = createConfigSource(config);
    const store = new ConfigStore();
    try {
      await source.start(store);
    } finally {
      await source.stop();
    }
    return store;
  }
  const dir = activeSource(config, labDirFlag(values)).manifestsDir;
  return readFolderConfig(dir).store;
}
