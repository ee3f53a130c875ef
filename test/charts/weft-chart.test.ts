// charts/weft, rendered by a real helm (scripts/helm.mjs: the static binary from a devDependency) and read
// back as objects: lint, then the objects of six value sets (defaults, two CA replicas, two waypoints,
// the CA's own certificates, no route status, the Grafana dashboard), checked against each other (names, ports,
// volumes, service accounts, RBAC) and against the code they run (the weft command's flags and parsers,
// the waypoint conventions core/ and lab/ use), plus bad waypoint entries refused.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { AGENT_USAGE } from '../../cli/agent.js';
import { CA_USAGE } from '../../cli/ca.js';
import { WAYPOINT_USAGE, waypointRunOptions } from '../../cli/waypoint.js';
import { convertManifest } from '../../core/convert/index.js';
import { DATAPLANE_MODE_LABEL, DATAPLANE_MODE_NONE, WAYPOINT_GATEWAY_CLASS } from '../../core/model/index.js';
import { GATEWAY_NAME_LABEL, WAYPOINT_FOR_LABEL, waypointFor } from '../../core/waypoints.js';
import { isWaypointService, WAYPOINT_LISTENER_NAME } from '../../lab/cluster/waypoint.js';
import { WAYPOINT_CONTROLLER_NAME } from '../../proxy/routing/index.js';
import { skipReason } from '../helpers/exec.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHART = join(ROOT, 'charts', 'weft');
const HELM = join(ROOT, 'scripts', 'helm.mjs');
const NS = 'weft-system';
const RELEASE = 'weft';

// ---- objects ------------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Obj };
  [field: string]: unknown;
}

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  readinessProbe?: { httpGet?: { path: string; port: number | string } };
  livenessProbe?: { httpGet?: { path: string; port: number | string } };
  securityContext?: Obj & { capabilities?: { add?: string[]; drop?: string[] } };
  volumeMounts?: { name: string; mountPath: string; mountPropagation?: string; readOnly?: boolean }[];
}

interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string };
  hostPath?: { path: string; type?: string };
  emptyDir?: Obj;
  projected?: {
    sources: { serviceAccountToken?: { path: string; audience?: string; expirationSeconds?: number } }[];
  };
}

interface PodSpec {
  serviceAccountName?: string;
  hostNetwork?: boolean;
  dnsPolicy?: string;
  priorityClassName?: string;
  terminationGracePeriodSeconds?: number;
  tolerations?: Obj[];
  securityContext?: Obj & { seccompProfile?: { type: string } };
  containers: Container[];
  volumes?: Volume[];
  imagePullSecrets?: { name: string }[];
}

interface Workload extends K8sObject {
  spec: {
    replicas?: number;
    selector: { matchLabels: Record<string, string> };
    updateStrategy?: {
      type: string;
      rollingUpdate?: { maxUnavailable?: number | string; maxSurge?: number | string };
    };
    strategy?: {
      type: string;
      rollingUpdate?: { maxUnavailable?: number | string; maxSurge?: number | string };
    };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}

interface ServiceObject extends K8sObject {
  spec: {
    selector: Record<string, string>;
    ports: { name: string; port: number; targetPort?: number | string; protocol?: string }[];
  };
}

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

interface RoleObject extends K8sObject {
  rules: Rule[];
}

interface BindingObject extends K8sObject {
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects: { kind: string; name: string; namespace?: string }[];
}

const ALLOWED_KINDS: Readonly<Record<string, readonly string[]>> = {
  v1: ['ServiceAccount', 'Service', 'ConfigMap'],
  'apps/v1': ['Deployment', 'DaemonSet'],
  'policy/v1': ['PodDisruptionBudget'],
  'rbac.authorization.k8s.io/v1': ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'],
  'gateway.networking.k8s.io/v1': ['Gateway', 'GatewayClass'],
  'apiextensions.k8s.io/v1': ['CustomResourceDefinition'],
};
const CLUSTER_SCOPED = new Set([
  'ClusterRole',
  'ClusterRoleBinding',
  'GatewayClass',
  'CustomResourceDefinition',
]);
const READ_VERBS = new Set(['get', 'list', 'watch']);
/** What each component's roles may write (create, update, patch …): everything else is read-only. */
const WRITABLE: Readonly<Record<string, readonly string[]>> = {
  ca: ['tokenreviews', 'configmaps', 'secrets', 'leases'],
  waypoint: ['httproutes/status', 'leases'],
  agent: [],
};

const PACKAGE_VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;
const CHART_META = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as {
  version: string;
  appVersion: string;
};

/** Objects of one render, with lookups by kind and name. */
class Rendered {
  constructor(readonly objects: readonly K8sObject[]) {}

  all(kind: string): K8sObject[] {
    return this.objects.filter((o) => o.kind === kind);
  }

  find(kind: string, name: string, namespace?: string): K8sObject | undefined {
    return this.objects.find(
      (o) =>
        o.kind === kind &&
        o.metadata.name === name &&
        (namespace === undefined || o.metadata.namespace === namespace),
    );
  }

  get(kind: string, name: string, namespace?: string): K8sObject {
    const found = this.find(kind, name, namespace);
    if (found === undefined) throw new Error(`no ${kind} ${namespace ?? '-'}/${name} rendered`);
    return found;
  }

  workloads(): Workload[] {
    return this.objects.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet') as Workload[];
  }
}

// ---- helm -------------------------------------------------------------------------------------------

function helm(args: readonly string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [HELM, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr + (r.error ? r.error.message : '') };
}

function render(extra: readonly string[] = []): Rendered {
  const r = helm(['template', RELEASE, CHART, '-n', NS, '--include-crds', ...extra]);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr}`);
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(r.stdout)) {
    if (doc.errors.length > 0)
      throw new Error(`helm template printed invalid YAML: ${doc.errors[0]!.message}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) objects.push(value as K8sObject);
  }
  return new Rendered(objects);
}

const helmMissing = (() => {
  const r = helm(['version', '--short']);
  return r.code === 0 ? undefined : `the helm binary is not available: ${r.stderr.trim()}`;
})();

// ---- the weft command's flags -------------------------------------------------------------------------

/**
 * The flags the chart passes, by subcommand: string (takes a value) or boolean. Each must also appear in
 * that subcommand's usage text (the parsers are strict, so a flag missing there is one the CLI refuses).
 */
const FLAGS: Readonly<
  Record<string, { usage: string; flags: Readonly<Record<string, 'string' | 'boolean'>> }>
> = {
  'ca serve': {
    usage: CA_USAGE,
    flags: {
      config: 'string',
      auth: 'string',
      'root-secret': 'string',
      'root-configmap': 'string',
      'plugin-certs': 'string',
      'leader-election': 'string',
      'trust-domain': 'string',
      listen: 'string',
      'http-listen': 'string',
      'default-ttl': 'string',
      'max-ttl': 'string',
      'serving-dns': 'string',
      'trusted-node-accounts': 'string',
      'token-audience': 'string',
    },
  },
  'agent run': {
    usage: AGENT_USAGE,
    flags: {
      node: 'string',
      config: 'string',
      'ca-root': 'string',
      'token-file': 'string',
      'ca-address': 'string',
      'ca-server-name': 'string',
      'trust-domain': 'string',
      'cert-ttl': 'string',
      hbone: 'string',
      metrics: 'string',
      readiness: 'string',
      admin: 'string',
      capture: 'boolean',
      bpffs: 'string',
      'drain-deadline': 'string',
      'cert-cache': 'string',
    },
  },
  'waypoint run': {
    usage: WAYPOINT_USAGE,
    flags: {
      name: 'string',
      namespace: 'string',
      node: 'string',
      'service-account': 'string',
      config: 'string',
      'ca-root': 'string',
      'token-file': 'string',
      'ca-address': 'string',
      'ca-server-name': 'string',
      'trust-domain': 'string',
      'cert-ttl': 'string',
      hbone: 'string',
      metrics: 'string',
      readiness: 'string',
      'route-status': 'boolean',
    },
  },
};

/** `weft SUB …` args as subcommand + flag map; throws naming the flag that is not known or misused. */
function parseArgs(args: readonly string[]): { sub: string; flags: Map<string, string | true> } {
  const sub = `${args[0]} ${args[1]}`;
  const spec = FLAGS[sub];
  if (spec === undefined) throw new Error(`unknown subcommand weft ${sub}`);
  const flags = new Map<string, string | true>();
  for (let i = 2; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) throw new Error(`weft ${sub}: unexpected argument ${arg}`);
    const name = arg.slice(2);
    const type = spec.flags[name];
    if (type === undefined)
      throw new Error(`weft ${sub}: the chart passes --${name}, not in the test's list`);
    if (flags.has(name)) throw new Error(`weft ${sub}: --${name} given twice`);
    if (type === 'boolean') {
      flags.set(name, true);
      continue;
    }
    const value = args[++i];
    if (value === undefined || value.startsWith('--'))
      throw new Error(`weft ${sub}: --${name} needs a value`);
    flags.set(name, value);
  }
  return { sub, flags };
}

function flag(flags: Map<string, string | true>, name: string): string {
  const v = flags.get(name);
  if (typeof v !== 'string') throw new Error(`--${name} is not set`);
  return v;
}

// ---- checks every render must pass -------------------------------------------------------------------

function podContainer(w: Workload): Container {
  const c = w.spec.template.spec.containers;
  if (c.length !== 1)
    throw new Error(`${w.kind} ${w.metadata.name}: expected one container, got ${c.length}`);
  return c[0]!;
}

function component(o: K8sObject): string | undefined {
  return o.metadata.labels?.['app.kubernetes.io/component'];
}

function checkCommon(
  t: Test,
  r: Rendered,
  waypointNamespaces: ReadonlySet<string>,
  pluginSecret?: string,
): void {
  for (const o of r.objects) {
    const what = `${o.kind} ${o.metadata?.namespace ?? '-'}/${o.metadata?.name}`;
    t.ok(
      ALLOWED_KINDS[o.apiVersion]?.includes(o.kind),
      `${what}: ${o.apiVersion} ${o.kind} is an expected kind`,
    );
    t.match(o.metadata?.name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, `${what}: has a valid name`);
    if (CLUSTER_SCOPED.has(o.kind)) t.equal(o.metadata.namespace, undefined, `${what}: cluster-scoped`);
    else if (component(o) === 'waypoint')
      t.ok(waypointNamespaces.has(o.metadata.namespace ?? ''), `${what}: in a waypoint's namespace`);
    else t.equal(o.metadata.namespace, NS, `${what}: in the release namespace`);
    if (o.kind === 'CustomResourceDefinition') continue;
    t.match(
      o.metadata.labels,
      {
        'app.kubernetes.io/name': 'weft',
        'app.kubernetes.io/instance': RELEASE,
        'app.kubernetes.io/version': PACKAGE_VERSION,
        'app.kubernetes.io/managed-by': 'Helm',
        'app.kubernetes.io/part-of': 'weft',
        'helm.sh/chart': `weft-${CHART_META.version}`,
        'app.kubernetes.io/component': /^(ca|agent|waypoint|dashboards)$/,
      },
      `${what}: standard labels`,
    );
  }

  // Names are unique per kind and namespace (helm would apply the last one silently).
  const keys = r.objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
  t.same(
    keys.filter((k, i) => keys.indexOf(k) !== i),
    [],
    'no object is rendered twice',
  );

  for (const w of r.workloads()) {
    const what = `${w.kind} ${w.metadata.namespace}/${w.metadata.name}`;
    const ns = w.metadata.namespace!;
    const pod = w.spec.template.spec;
    const labels = w.spec.template.metadata.labels;
    t.match(labels, w.spec.selector.matchLabels, `${what}: the selector matches its pods`);
    t.match(
      labels,
      { 'app.kubernetes.io/part-of': 'weft', 'app.kubernetes.io/instance': RELEASE },
      `${what}: pod labels`,
    );
    t.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', `${what}: seccomp RuntimeDefault`);
    // Service accounts, ConfigMaps and Secrets the pod names are rendered here, or are the two documented
    // exceptions: the CA-published root certificate and the user's own CA Secret.
    t.ok(
      r.find('ServiceAccount', pod.serviceAccountName ?? '', ns),
      `${what}: its service account is rendered`,
    );
    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
    for (const v of volumes.values()) {
      if (v.configMap)
        t.ok(
          v.configMap.name === 'weft-ca-root-cert' || r.find('ConfigMap', v.configMap.name, ns),
          `${what}: ConfigMap ${v.configMap.name} is rendered or published by the CA`,
        );
      if (v.secret)
        t.ok(
          v.secret.secretName === pluginSecret || r.find('Secret', v.secret.secretName, ns),
          `${what}: Secret ${v.secret.secretName} is rendered or the user's pluginCertsSecret`,
        );
      if (v.hostPath) t.equal(w.kind, 'DaemonSet', `${what}: only the agent mounts host paths`);
    }
    const c = podContainer(w);
    t.same(c.command, ['node', '/app/dist/cli/main.js'], `${what}: runs the weft command`);
    t.match(c.image, /^weft-(ca|agent|waypoint):/, `${what}: image`);
    for (const m of c.volumeMounts ?? []) t.ok(volumes.has(m.name), `${what}: mount ${m.name} has a volume`);
    t.equal(c.securityContext?.allowPrivilegeEscalation, false, `${what}: no privilege escalation`);
    t.equal(c.securityContext?.readOnlyRootFilesystem, true, `${what}: read-only root filesystem`);
    t.not(c.securityContext?.privileged, true, `${what}: not privileged`);
    t.same(c.securityContext?.capabilities?.drop, ['ALL'], `${what}: drops every capability`);
    // $(VAR) in args must be defined in env, or Kubernetes passes it literally.
    const env = new Set((c.env ?? []).map((e) => e.name));
    for (const arg of c.args ?? [])
      for (const [, name] of arg.matchAll(/\$\(([A-Z_]+)\)/g))
        t.ok(env.has(name!), `${what}: $(${name}) is in env`);
    t.same(
      c.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath,
      'spec.nodeName',
      `${what}: NODE_NAME from the downward API`,
    );
    t.equal(c.env?.find((e) => e.name === 'WEFT_LOG_LEVEL')?.value, 'info', `${what}: log level`);

    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs(c.args ?? []);
    } catch (err) {
      t.fail(`${what}: ${(err as Error).message}`);
      continue;
    }
    const usage = FLAGS[parsed.sub]!.usage;
    for (const name of parsed.flags.keys())
      t.ok(
        new RegExp(`--${name}(?![-a-z])`).test(usage),
        `${what}: weft ${parsed.sub} accepts --${name} (in its usage text)`,
      );
  }

  // Every Service selects pods of a rendered workload, and each targetPort is one of their ports.
  for (const s of r.all('Service') as ServiceObject[]) {
    const what = `Service ${s.metadata.namespace}/${s.metadata.name}`;
    const backends = r
      .workloads()
      .filter(
        (w) =>
          w.metadata.namespace === s.metadata.namespace &&
          Object.entries(s.spec.selector).every(([k, v]) => w.spec.template.metadata.labels[k] === v),
      );
    t.equal(backends.length, 1, `${what}: selects the pods of one workload`);
    const ports = backends.flatMap((w) => podContainer(w).ports ?? []);
    for (const p of s.spec.ports) {
      const target = p.targetPort ?? p.port;
      t.ok(
        ports.some((cp) => (typeof target === 'number' ? cp.containerPort === target : cp.name === target)),
        `${what}: port ${p.name} targets a container port (${target})`,
      );
      const cp = ports.find((c) => c.name === target || c.containerPort === target);
      if (cp) t.equal(cp.containerPort, p.port, `${what}: port ${p.name} keeps its number`);
    }
  }

  // RBAC: no wildcards, Secrets only through a Role, bindings point at rendered roles and accounts.
  for (const role of [...r.all('ClusterRole'), ...r.all('Role')] as RoleObject[]) {
    const what = `${role.kind} ${role.metadata.name}`;
    for (const rule of role.rules) {
      for (const field of ['apiGroups', 'resources', 'verbs', 'resourceNames'] as const)
        t.notOk(rule[field]?.includes('*'), `${what}: no wildcard in ${field}`);
      if (role.kind === 'ClusterRole')
        t.notOk(rule.resources?.includes('secrets'), `${what}: no Secret access cluster-wide`);
    }
    // Writes only where a component needs them; the agent writes nothing.
    const writable = WRITABLE[component(role) ?? ''] ?? [];
    for (const rule of role.rules.filter((x) => x.verbs.some((v) => !READ_VERBS.has(v))))
      t.same(
        rule.resources?.filter((res) => !writable.includes(res)),
        [],
        `${what}: writes only ${writable.join(', ') || 'nothing'}`,
      );
  }
  for (const b of [...r.all('ClusterRoleBinding'), ...r.all('RoleBinding')] as BindingObject[]) {
    const what = `${b.kind} ${b.metadata.name}`;
    t.ok(
      r.find(b.roleRef.kind, b.roleRef.name, b.roleRef.kind === 'Role' ? b.metadata.namespace : undefined),
      `${what}: its ${b.roleRef.kind} is rendered`,
    );
    for (const s of b.subjects) {
      t.equal(s.kind, 'ServiceAccount', `${what}: binds service accounts`);
      t.ok(
        r.find('ServiceAccount', s.name, s.namespace),
        `${what}: ServiceAccount ${s.namespace}/${s.name} is rendered`,
      );
    }
  }
}

/** Structural-schema rules the API server enforces on a CRD's openAPIV3Schema (a subset). */
function structuralProblems(schema: Obj, path: string): string[] {
  const problems: string[] = [];
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  const intOrString = schema['x-kubernetes-int-or-string'] === true;
  if (typeof schema.type !== 'string' && !preserve && !intOrString) problems.push(`${path}: no type`);
  const props = schema.properties as Record<string, Obj> | undefined;
  if (props !== undefined) {
    if (schema.type !== 'object') problems.push(`${path}: properties on a non-object`);
    if (schema.additionalProperties !== undefined)
      problems.push(`${path}: properties and additionalProperties`);
    for (const [k, v] of Object.entries(props)) problems.push(...structuralProblems(v, `${path}.${k}`));
  }
  if (typeof schema.additionalProperties === 'object')
    problems.push(...structuralProblems(schema.additionalProperties as Obj, `${path}.*`));
  if (schema.type === 'array') {
    if (schema.items === undefined) problems.push(`${path}: array without items`);
    else problems.push(...structuralProblems(schema.items as Obj, `${path}[]`));
    const keys = schema['x-kubernetes-list-map-keys'] as string[] | undefined;
    const required = ((schema.items as Obj | undefined)?.required as string[] | undefined) ?? [];
    for (const k of keys ?? [])
      if (!required.includes(k)) problems.push(`${path}: list-map key ${k} not required`);
  }
  for (const k of Object.keys(schema))
    if (['$ref', 'additionalItems', 'patternProperties', 'dependencies', 'definitions', 'id'].includes(k))
      problems.push(`${path}: ${k} is not allowed in a structural schema`);
  return problems;
}

// ---- the tests --------------------------------------------------------------------------------------

// Without helm (the devDependency missing) the tests skip with the reason; under CI they fail.
const skip = skipReason(t, helmMissing);
t.test('Chart.yaml: appVersion is the package version', async (t) => {
  t.equal(CHART_META.appVersion, PACKAGE_VERSION);
});

t.test(
  'helm lint --strict passes, with defaults, with waypoints and with the dashboard',
  { skip },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-chart-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const values = join(dir, 'values.yaml');
    writeFileSync(values, 'waypoints:\n  - namespace: shop\n');
    for (const extra of [[], ['-f', values], ['--set', 'dashboards.enabled=true']]) {
      const r = helm(['lint', '--strict', CHART, ...extra]);
      t.equal(r.code, 0, `helm lint --strict ${extra.join(' ')}: ${r.stdout}${r.stderr}`);
    }
  },
);

t.test('defaults: CA, agent, RBAC, CRDs, GatewayClass; no waypoint', { skip }, async (t) => {
  const r = render();
  checkCommon(t, r, new Set());

  // The CA.
  const ca = r.get('Deployment', 'weft-ca', NS) as Workload;
  t.equal(ca.spec.replicas, 1, 'one CA replica by default');
  t.notOk(r.find('PodDisruptionBudget', 'weft-ca', NS), 'no PDB for one replica');
  t.same(
    ca.spec.strategy,
    { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
    'upgrades surge: the new CA is ready before the old one stops',
  );
  const caPod = ca.spec.template.spec;
  const caC = podContainer(ca);
  const { flags: caFlags } = parseArgs(caC.args ?? []);
  t.same(caC.args?.slice(0, 2), ['ca', 'serve']);
  t.equal(flag(caFlags, 'config'), 'kubernetes');
  t.equal(flag(caFlags, 'auth'), 'kubernetes');
  t.equal(flag(caFlags, 'root-secret'), `${NS}/weft-ca-root`);
  t.notOk(caFlags.has('plugin-certs'), 'no --plugin-certs without ca.pluginCertsSecret');
  t.equal(flag(caFlags, 'root-configmap'), 'weft-ca-root-cert');
  t.equal(flag(caFlags, 'leader-election'), `${NS}/weft-ca`);
  t.notOk(caFlags.has('route-status'), "route status is the waypoints' business");
  t.equal(flag(caFlags, 'trust-domain'), 'cluster.local');
  t.equal(flag(caFlags, 'listen'), '0.0.0.0:15012');
  t.equal(flag(caFlags, 'http-listen'), '0.0.0.0:15014');
  t.equal(flag(caFlags, 'default-ttl'), '24h');
  t.equal(flag(caFlags, 'max-ttl'), '2160h');
  t.equal(flag(caFlags, 'trusted-node-accounts'), `${NS}/weft-agent`);
  t.equal(flag(caFlags, 'token-audience'), 'istio-ca');
  t.same(
    flag(caFlags, 'serving-dns').split(','),
    [`weft-ca.${NS}.svc`, `weft-ca.${NS}.svc.cluster.local`, 'weft-ca'],
    'the CA certificate names its Service',
  );
  t.same(
    ['POD_NAME', 'POD_NAMESPACE'].map(
      (n) => caC.env?.find((e) => e.name === n)?.valueFrom?.fieldRef?.fieldPath,
    ),
    ['metadata.name', 'metadata.namespace'],
    'leader identity from the downward API',
  );
  t.match(caC.readinessProbe, { httpGet: { path: '/healthz/ready', port: 15014 } });
  t.match(caC.livenessProbe, { httpGet: { path: '/healthz/live', port: 15014 } });
  t.match(caPod.securityContext, { runAsNonRoot: true, runAsUser: 65532 }, 'the CA is not root');
  t.same(caC.securityContext?.capabilities?.add, undefined, 'the CA adds no capability');
  const caSvc = r.get('Service', 'weft-ca', NS) as ServiceObject;
  t.same(
    caSvc.spec.ports.map((p) => p.port),
    [15012, 15014],
  );

  // CA RBAC.
  // Exactly the calls ca/kubernetes/ makes: TokenReviews, pod placement (read, list by field selector),
  // namespaces watched and a ConfigMap read, created or replaced in each.
  const caRole = r.get('ClusterRole', `weft-ca-${NS}`) as RoleObject;
  t.same(
    caRole.rules.map((x) => [x.apiGroups, x.resources, x.verbs, x.resourceNames]),
    [
      [['authentication.k8s.io'], ['tokenreviews'], ['create'], undefined],
      [[''], ['pods'], ['get', 'list'], undefined],
      [[''], ['namespaces'], ['get', 'list', 'watch'], undefined],
      [[''], ['configmaps'], ['get', 'create', 'update'], undefined],
    ],
    'the CA ClusterRole',
  );
  const caNsRole = r.get('Role', 'weft-ca', NS) as RoleObject;
  const secretRules = caNsRole.rules.filter((x) => x.resources?.includes('secrets'));
  t.same(
    secretRules.map((x) => [x.verbs, x.resourceNames]),
    [
      [['create'], undefined],
      [['get'], ['weft-ca-root']],
    ],
    'Secrets: create, and get of weft-ca-root only (ca/kubernetes/root-secret.ts never replaces it)',
  );
  t.same(
    caNsRole.rules.filter((x) => x.resources?.includes('leases')).map((x) => [x.verbs, x.resourceNames]),
    [
      [['create'], undefined],
      [['get', 'update'], ['weft-ca']],
    ],
    'Leases: create, and get/update of weft-ca only',
  );

  // The agent.
  const ds = r.get('DaemonSet', 'weft-agent', NS) as Workload;
  const pod = ds.spec.template.spec;
  const c = podContainer(ds);
  t.equal(pod.hostNetwork, true, 'host network');
  t.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet', 'cluster DNS on the host network');
  t.equal(pod.priorityClassName, 'system-node-critical');
  t.equal(pod.terminationGracePeriodSeconds, 30);
  t.same(pod.tolerations, [{ operator: 'Exists' }], 'tolerates every taint');
  t.same(
    ds.spec.updateStrategy,
    { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
    'upgrades surge: the new agent takes over from the old one on each node',
  );
  t.equal(pod.serviceAccountName, 'weft-agent');
  t.same(
    [...(c.securityContext?.capabilities?.add ?? [])].sort(),
    ['BPF', 'NET_ADMIN'],
    'exactly NET_ADMIN and BPF',
  );
  t.match(c.securityContext, {
    runAsUser: 0,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
  });
  t.match(c.readinessProbe, { httpGet: { path: '/healthz/ready', port: 15021 } });
  t.match(c.livenessProbe, { httpGet: { path: '/healthz/live', port: 15021 } });
  const { flags } = parseArgs(c.args ?? []);
  t.same(c.args?.slice(0, 2), ['agent', 'run']);
  t.equal(flag(flags, 'node'), '$(NODE_NAME)');
  t.equal(flag(flags, 'config'), 'kubernetes');
  t.equal(flags.get('capture'), true, 'capture on');
  t.equal(flag(flags, 'bpffs'), '/sys/fs/bpf');
  t.equal(flag(flags, 'readiness'), '0.0.0.0:15021');
  t.equal(flag(flags, 'admin'), '127.0.0.1:15000', 'admin stays on loopback');
  t.equal(flag(flags, 'cert-ttl'), '24h');
  t.equal(flag(flags, 'ca-address'), `weft-ca.${NS}.svc:15012`, 'the CA Service and its gRPC port');
  t.ok(
    flag(caFlags, 'serving-dns').split(',').includes(flag(flags, 'ca-server-name')),
    'the CA name is served',
  );
  t.equal(
    flag(flags, 'trust-domain'),
    flag(caFlags, 'trust-domain'),
    'the agent and the CA share the trust domain',
  );
  checkCaClientVolumes(t, ds, flags);
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  const bpffs = c.volumeMounts?.find((m) => m.mountPath === '/sys/fs/bpf');
  t.same(
    volumes.get(bpffs?.name ?? '')?.hostPath,
    { path: '/sys/fs/bpf', type: 'Directory' },
    'bpffs from the host',
  );
  t.equal(bpffs?.mountPropagation, 'HostToContainer', 'bpffs propagation needs no privileged container');
  t.same(c.ports ?? [], [], 'no declared ports: on the host network they would block the surge pod');
  t.equal(flag(flags, 'drain-deadline'), '25s', 'the drain ends inside the termination grace');
  const certs = c.volumeMounts?.find((m) => m.mountPath === flag(flags, 'cert-cache'));
  t.same(
    volumes.get(certs?.name ?? '')?.emptyDir,
    { medium: 'Memory', sizeLimit: '16Mi' },
    'the certificate cache is on a memory volume',
  );
  const agentRole = r.get('ClusterRole', `weft-agent-${NS}`) as RoleObject;
  t.same(
    agentRole.rules.flatMap((x) => x.resources ?? []).sort(),
    [
      'authorizationpolicies',
      'endpointslices',
      'gateways',
      'namespaces',
      'peerauthentications',
      'pods',
      'services',
    ],
    'the agent reads exactly its kinds (agent/main.ts AGENT_KINDS: no HTTPRoute)',
  );

  // The waypoint class, and no waypoint.
  const gc = r.get('GatewayClass', WAYPOINT_GATEWAY_CLASS) as K8sObject & {
    spec: { controllerName: string };
  };
  t.equal(
    gc.spec.controllerName,
    WAYPOINT_CONTROLLER_NAME,
    'the controllerName route status is written under',
  );
  t.equal(r.all('Gateway').length, 0, 'no waypoint by default');
  t.notOk(r.find('ClusterRole', `weft-waypoint-${NS}`), 'no waypoint role without waypoints');

  // CRDs.
  const crds = r.all('CustomResourceDefinition') as (K8sObject & {
    spec: {
      group: string;
      names: { plural: string; kind: string };
      versions: {
        name: string;
        served: boolean;
        storage: boolean;
        schema: { openAPIV3Schema: Obj };
        subresources?: { status?: Obj };
      }[];
    };
  })[];
  t.same(crds.map((c) => c.metadata.name).sort(), [
    'authorizationpolicies.security.istio.io',
    'gatewayclasses.gateway.networking.k8s.io',
    'gateways.gateway.networking.k8s.io',
    'grpcroutes.gateway.networking.k8s.io',
    'httproutes.gateway.networking.k8s.io',
    'peerauthentications.security.istio.io',
    'referencegrants.gateway.networking.k8s.io',
    'requestauthentications.security.istio.io',
  ]);
  for (const crd of crds) {
    const what = crd.metadata.name;
    t.equal(what, `${crd.spec.names.plural}.${crd.spec.group}`, `${what}: named plural.group`);
    const storage = crd.spec.versions.filter((v) => v.storage);
    t.same(
      storage.map((v) => v.name),
      ['v1'],
      `${what}: v1 is the storage version`,
    );
    for (const v of crd.spec.versions) {
      t.equal(v.served, true, `${what} ${v.name}: served`);
      t.same(
        structuralProblems(v.schema.openAPIV3Schema, `${what} ${v.name}`),
        [],
        `${what} ${v.name}: structural`,
      );
      t.equal(
        v.subresources?.status !== undefined,
        crd.spec.names.kind !== 'ReferenceGrant',
        `${what} ${v.name}: status subresource (ReferenceGrant has no status)`,
      );
    }
    if (crd.spec.group === 'gateway.networking.k8s.io')
      t.match(
        crd.metadata.annotations,
        {
          'api-approved.kubernetes.io': /^https:\/\//,
          'gateway.networking.k8s.io/bundle-version': /^v1\.\d+\.\d+$/,
          'gateway.networking.k8s.io/channel': 'standard',
        },
        `${what}: Gateway API annotations (the API server refuses *.k8s.io CRDs without api-approved)`,
      );
    else
      t.same(
        crd.spec.versions.map((v) => v.name),
        ['v1', 'v1beta1'],
        `${what}: Istio serves v1 and v1beta1`,
      );
  }
});

t.test('ca.replicas=2: two CA pods, leader election, a disruption budget', { skip }, async (t) => {
  const r = render(['--set', 'ca.replicas=2']);
  checkCommon(t, r, new Set());
  const ca = r.get('Deployment', 'weft-ca', NS) as Workload;
  t.equal(ca.spec.replicas, 2);
  t.equal(flag(parseArgs(podContainer(ca).args ?? []).flags, 'leader-election'), `${NS}/weft-ca`);
  t.match(r.get('PodDisruptionBudget', 'weft-ca', NS), {
    spec: { minAvailable: 1, selector: { matchLabels: ca.spec.selector.matchLabels } },
  });
});

t.test('ca.pluginCertsSecret: the user CA is mounted, no root Secret access', { skip }, async (t) => {
  const r = render(['--set', 'ca.pluginCertsSecret=cacerts']);
  checkCommon(t, r, new Set(), 'cacerts');
  const ca = r.get('Deployment', 'weft-ca', NS) as Workload;
  const c = podContainer(ca);
  const { flags } = parseArgs(c.args ?? []);
  t.equal(flag(flags, 'plugin-certs'), '/etc/cacerts');
  t.notOk(flags.has('root-secret'), 'no --root-secret with plugin certs');
  const mount = c.volumeMounts?.find((m) => m.mountPath === '/etc/cacerts');
  t.same(
    ca.spec.template.spec.volumes?.find((v) => v.name === mount?.name)?.secret?.secretName,
    'cacerts',
    'the Secret is mounted where --plugin-certs points',
  );
  const role = r.get('Role', 'weft-ca', NS) as RoleObject;
  t.notOk(
    role.rules.some((x) => x.resources?.includes('secrets')),
    'no Secret access',
  );
});

t.test(
  'two waypoints: Gateway, Service, ServiceAccount, Deployment and binding each',
  { skip },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-chart-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const values = join(dir, 'waypoints.yaml');
    writeFileSync(
      values,
      'waypoints:\n  - namespace: shop\n  - namespace: pay\n    name: pay-wp\n    for: all\n    replicas: 2\n',
    );
    const r = render(['-f', values]);
    checkCommon(t, r, new Set(['shop', 'pay']));
    t.equal(r.all('Gateway').length, 2);
    const role = r.get('ClusterRole', `weft-waypoint-${NS}`) as RoleObject;
    t.ok(role, 'the waypoint ClusterRole');

    for (const [ns, name, forWhat, replicas] of [
      ['shop', 'waypoint', 'service', 1],
      ['pay', 'pay-wp', 'all', 2],
    ] as const) {
      const what = `waypoint ${ns}/${name}`;
      const gw = r.get('Gateway', name, ns);
      t.match(
        gw,
        {
          metadata: { labels: { [WAYPOINT_FOR_LABEL]: forWhat } },
          spec: {
            gatewayClassName: WAYPOINT_GATEWAY_CLASS,
            listeners: [{ name: WAYPOINT_LISTENER_NAME, port: 15008, protocol: 'HBONE' }],
          },
        },
        `${what}: Gateway`,
      );
      // The same conversion the kubernetes source applies: accepted, a waypoint, for the right traffic.
      const converted = convertManifest(gw);
      t.equal(converted.outcome, 'converted', `${what}: Weft accepts the Gateway`);
      if (converted.outcome === 'converted' && converted.record.kind === 'Gateway')
        t.equal(waypointFor(converted.record), forWhat, `${what}: ${WAYPOINT_FOR_LABEL}`);

      const svc = r.get('Service', name, ns) as ServiceObject;
      t.ok(isWaypointService(svc, name), `${what}: agents find its Service`);
      t.same(
        svc.spec.ports.map((p) => [p.name, p.port]),
        [
          [WAYPOINT_LISTENER_NAME, 15008],
          ['status-port', 15021],
        ],
      );
      t.equal(convertManifest(svc).outcome, 'converted', `${what}: Weft accepts the Service`);

      t.ok(r.find('ServiceAccount', name, ns), `${what}: ServiceAccount`);
      const binding = r
        .all('ClusterRoleBinding')
        .find((b) => (b as BindingObject).subjects.some((s) => s.name === name && s.namespace === ns)) as
        BindingObject | undefined;
      t.equal(binding?.roleRef.name, `weft-waypoint-${NS}`, `${what}: bound to the read-only role`);

      const d = r.get('Deployment', name, ns) as Workload;
      t.equal(d.spec.replicas, replicas, `${what}: replicas`);
      t.match(
        d.spec.template.metadata.labels,
        { [GATEWAY_NAME_LABEL]: name, [DATAPLANE_MODE_LABEL]: DATAPLANE_MODE_NONE },
        `${what}: pod labels (selected by its Service, not enrolled)`,
      );
      const pod = d.spec.template.spec;
      t.equal(pod.serviceAccountName, name);
      t.equal(pod.hostNetwork, undefined, `${what}: pod network`);
      const c = podContainer(d);
      t.same(c.securityContext?.capabilities?.add, undefined, `${what}: no capability`);
      t.match(pod.securityContext, { runAsNonRoot: true }, `${what}: not root`);
      t.match(c.readinessProbe, { httpGet: { path: '/healthz/ready', port: 15021 } });
      t.match(c.livenessProbe, { httpGet: { path: '/healthz/live', port: 15021 } });
      const { flags } = parseArgs(c.args ?? []);
      t.same(c.args?.slice(0, 2), ['waypoint', 'run']);
      t.equal(flag(flags, 'name'), name);
      t.equal(flag(flags, 'namespace'), ns);
      t.equal(flag(flags, 'service-account'), name);
      t.equal(flag(flags, 'ca-address'), `weft-ca.${NS}.svc:15012`);
      t.equal(flags.get('route-status'), true, `${what}: writes the status of its routes`);
      // The Lease proxy/main.ts elects the writer with: weft-waypoint-<name> in the waypoint's namespace.
      const lease = `weft-waypoint-${name}`;
      t.same(
        (r.get('Role', lease, ns) as RoleObject).rules.map((x) => [x.resources, x.verbs, x.resourceNames]),
        [
          [['leases'], ['create'], undefined],
          [['leases'], ['get', 'update'], [lease]],
        ],
        `${what}: its Lease`,
      );
      t.match(
        r.get('RoleBinding', lease, ns),
        {
          roleRef: { kind: 'Role', name: lease },
          subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
        },
        `${what}: its Lease is bound to its account`,
      );
      checkCaClientVolumes(t, d, flags);
      // The waypoint's own parser takes these args (after the kubelet expands $(NODE_NAME)).
      const args = (c.args ?? []).slice(2).map((a) => a.replace('$(NODE_NAME)', 'node-1'));
      const options = waypointRunOptions(args);
      t.match(
        options,
        {
          name,
          namespace: ns,
          serviceAccount: name,
          nodeName: 'node-1',
          configSource: 'kubernetes',
          hboneListen: { host: '0.0.0.0', port: 15008 },
          readinessListen: { host: '0.0.0.0', port: 15021 },
          ca: { address: { host: `weft-ca.${NS}.svc`, port: 15012 }, serverName: `weft-ca.${NS}.svc` },
        },
        `${what}: weft waypoint run parses its args`,
      );
    }
  },
);

t.test('routeStatus: replicas elect a writer by pod name; none writes nothing', { skip }, async (t) => {
  const r = render(['--set', 'waypoints[0].namespace=shop']);
  const d = r.get('Deployment', 'waypoint', 'shop') as Workload;
  const args = (podContainer(d).args ?? []).slice(2).map((a) => a.replace('$(NODE_NAME)', 'node-1'));
  const previous = process.env.POD_NAME;
  process.env.POD_NAME = 'waypoint-7d9f-abcde';
  t.teardown(() => {
    if (previous === undefined) delete process.env.POD_NAME;
    else process.env.POD_NAME = previous;
  });
  t.match(
    waypointRunOptions(args),
    { routeStatus: { identity: 'waypoint-7d9f-abcde' } },
    'each replica is a candidate under its pod name (POD_NAME)',
  );
  t.equal(
    podContainer(d).env?.find((e) => e.name === 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath,
    'metadata.name',
  );
  t.ok(
    (r.get('ClusterRole', `weft-waypoint-${NS}`) as RoleObject).rules.some(
      (x) => x.resources?.includes('httproutes/status') && x.verbs.includes('update'),
    ),
    'waypoints may replace route status',
  );

  const none = render(['--set', 'routeStatus=none', '--set', 'waypoints[0].namespace=shop']);
  checkCommon(t, none, new Set(['shop']));
  const quiet = none.get('Deployment', 'waypoint', 'shop') as Workload;
  t.notOk(podContainer(quiet).args?.includes('--route-status'), 'routeStatus=none: no --route-status');
  t.notOk(none.find('Role', 'weft-waypoint-waypoint', 'shop'), 'routeStatus=none: no Lease role');
  t.ok(
    (none.get('ClusterRole', `weft-waypoint-${NS}`) as RoleObject).rules.every((x) =>
      x.verbs.every((v) => READ_VERBS.has(v)),
    ),
    'routeStatus=none: waypoints only read',
  );
});

t.test('bad waypoint entries are refused with the entry named', { skip }, async (t) => {
  for (const [set, message] of [
    ['waypoints[0].name=waypoint', /namespace/],
    ['waypoints[0].namespace=shop,waypoints[0].name=Bad_Name', /waypoints\[0\]\.name/],
    ['waypoints[0].namespace=shop,waypoints[0].for=everything', /for/],
  ] as const) {
    const r = helm(['template', RELEASE, CHART, '-n', NS, '--set', set]);
    t.not(r.code, 0, `--set ${set} fails`);
    t.match(r.stderr, message, `--set ${set}: says why`);
  }
  const dup = helm([
    'template',
    RELEASE,
    CHART,
    '-n',
    NS,
    '--set',
    'waypoints[0].namespace=shop,waypoints[1].namespace=shop',
  ]);
  t.match(dup.stderr, /listed twice/, 'the same waypoint twice is refused');
});

/** The root certificate and token a CA client mounts are where its --ca-root and --token-file point. */
function checkCaClientVolumes(t: Test, w: Workload, flags: Map<string, string | true>): void {
  const what = `${w.kind} ${w.metadata.namespace}/${w.metadata.name}`;
  const pod = w.spec.template.spec;
  const c = podContainer(w);
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  const mountOf = (file: string) => c.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
  const rootMount = mountOf(flag(flags, 'ca-root'));
  t.equal(
    flag(flags, 'ca-root').slice((rootMount?.mountPath.length ?? 0) + 1),
    'root-cert.pem',
    `${what}: --ca-root is the ConfigMap's root-cert.pem`,
  );
  t.equal(
    volumes.get(rootMount?.name ?? '')?.configMap?.name,
    'weft-ca-root-cert',
    `${what}: root from the CA's ConfigMap`,
  );
  const tokenMount = mountOf(flag(flags, 'token-file'));
  const token = volumes.get(tokenMount?.name ?? '')?.projected?.sources[0]?.serviceAccountToken;
  t.same(
    token,
    {
      path: flag(flags, 'token-file').slice((tokenMount?.mountPath.length ?? 0) + 1),
      audience: 'istio-ca',
      expirationSeconds: 43200,
    },
    `${what}: --token-file is a projected token for the audience istio-ca`,
  );
}

t.test(
  'dashboards: none by default; enabled, a ConfigMap for the Grafana sidecar with the JSON as is',
  { skip },
  async (t) => {
    const json = readFileSync(join(CHART, 'dashboards', 'weft-mesh.json'), 'utf8');
    t.notOk(render().all('ConfigMap').length, 'no ConfigMap with the default values');

    const r = render(['--set', 'dashboards.enabled=true']);
    checkCommon(t, r, new Set());
    t.equal(r.all('ConfigMap').length, 1, 'one ConfigMap');
    const cm = r.get('ConfigMap', 'weft-dashboards', NS) as K8sObject & { data: Record<string, string> };
    t.equal(cm.metadata.labels?.grafana_dashboard, '1', 'the Grafana sidecar label, grafana_dashboard: "1"');
    t.equal(cm.metadata.labels?.['app.kubernetes.io/component'], 'dashboards');
    t.notOk(cm.metadata.annotations, 'no annotations by default');
    t.same(Object.keys(cm.data), ['weft-mesh.json'], 'one dashboard');
    t.equal(cm.data['weft-mesh.json'], json, 'the JSON byte for byte');
    t.equal((JSON.parse(cm.data['weft-mesh.json']!) as { uid: string }).uid, 'weft-mesh');

    const moved = render([
      '--set',
      'dashboards.enabled=true,dashboards.namespace=monitoring,dashboards.label=grafana.example/dashboard',
      '--set-string',
      'dashboards.labelValue=weft,dashboards.annotations.grafana_folder=Weft',
    ]);
    const cm2 = moved.get('ConfigMap', 'weft-dashboards', 'monitoring');
    t.equal(cm2.metadata.labels?.['grafana.example/dashboard'], 'weft', 'label and value from the values');
    t.notOk(cm2.metadata.labels?.grafana_dashboard, 'only the label asked for');
    t.same(cm2.metadata.annotations, { grafana_folder: 'Weft' }, 'annotations from the values');
    const numeric = render(['--set', 'dashboards.enabled=true,dashboards.labelValue=1']);
    t.equal(
      numeric.get('ConfigMap', 'weft-dashboards', NS).metadata.labels?.grafana_dashboard,
      '1',
      'a numeric label value is quoted',
    );

    const bad = helm([
      'template',
      RELEASE,
      CHART,
      '-n',
      NS,
      '--set',
      'dashboards.enabled=true,dashboards.label=not a label',
    ]);
    t.not(bad.code, 0, 'a label key Kubernetes refuses is refused');
    t.match(bad.stderr, /dashboards/, 'says which value');
  },
);
