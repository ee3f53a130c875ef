// The agent, the waypoint and the CA, started on the same cluster from a folder of manifests (`file:`)
// and from the API server double (`kubernetes:`), behave the same: the same workloads, wanted
// identities, outbound plans, L4 verdicts, route statuses and route choices, the same rejections, and
// the same certificates granted and refused to each node's agent (bootstrap tokens and the config store
// on one side, TokenReview and the API's pod lists on the other). Then the
// same changes reach both — on the API side across a cut watch, a compaction (410 Gone) and an API
// server restart — and they agree again, with nothing lost and nothing left behind.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type AgentHandle } from '../../agent/main.js';
import { planOutbound } from '../../agent/outbound.js';
import { LocalWorkloads } from '../../agent/workloads.js';
import { PolicyAuthorizer } from '../../agent/authorizer.js';
import { identitiesForNode } from '../../agent/identity/node-identities.js';
import { startWaypoint } from '../../proxy/main.js';
import type { WaypointHandle } from '../../proxy/options.js';
import { compileRoutingTable, selectRoute } from '../../proxy/routing/index.js';
import { parseSpiffeId } from '../../core/spiffe.js';
import type { ConfigStore } from '../../core/store.js';
import * as grpc from '@grpc/grpc-js';
import { startCa, DEFAULT_WORKLOAD_TTL_S, MAX_WORKLOAD_TTL_S, type CaHandle } from '../../ca/main.js';
import { createNodeToken, NODE_TOKENS_FILE } from '../../ca/node-tokens.js';
import { ConfigStore as Store } from '../../core/store.js';
import { createConfigSource } from '../../core/sources/index.js';
import { opensslCsr, spiffeSanExt } from '../helpers/openssl.js';
import { rawCreateCertificate } from '../helpers/ca.js';
import { tokenForPod } from '../ca/kubernetes-helpers.js';
import { LocalCaClient } from '../helpers/local-ca-client.js';
import { CLUSTER_TABLE } from '../helpers/cluster-table.js';
import {
  KubeApiServer,
  kubeconfigFor,
  startKubeApiServer,
  type KubeObject,
} from '../helpers/kube-api-server.js';

const TRUST_DOMAIN = 'cluster.local';
const LOOPBACK = { host: '127.0.0.1', port: 0 };
/** Bounds every wait for a change to arrive. */
const WAIT_MS = 10_000;

interface Teardowns {
  teardown(fn: () => unknown): void;
}

interface World {
  readonly name: string;
  readonly agents: readonly AgentHandle[];
  readonly waypoint: WaypointHandle;
  readonly ca: CaHandle;
  /** The credential node-1's and node-2's agents present to the CA. */
  readonly agentTokens: readonly [string, string];
  /** Applies the same change in this world's own way. */
  change(objects: readonly KubeObject[], deleted: readonly KubeObject[]): Promise<void>;
}

async function components(
  t: Teardowns,
  name: string,
  configSource: string,
  change: World['change'],
  ca: { handle: CaHandle; agentTokens: readonly [string, string] },
): Promise<World> {
  const local = await LocalCaClient.create();
  const unused = { address: '127.0.0.1:1', rootCertPem: '', tokenFile: '/nonexistent' } as never;
  const agents: AgentHandle[] = [];
  for (const nodeName of ['node-1', 'node-2']) {
    const agent = await startAgent({
      nodeName,
      trustDomain: TRUST_DOMAIN,
      configSource,
      ca: unused,
      caClient: local,
      certTtlSeconds: 3600,
      adminListen: LOOPBACK,
      metricsListen: null,
      readinessListen: null,
      hboneListen: null,
      socksListen: null,
      capture: null,
    });
    t.teardown(() => agent.close());
    agents.push(agent);
  }
  const waypoint = await startWaypoint({
    name: 'waypoint',
    namespace: 'shop',
    serviceAccount: 'waypoint',
    nodeName: 'node-2',
    trustDomain: TRUST_DOMAIN,
    configSource,
    ca: unused,
    caClient: local,
    certTtlSeconds: 3600,
    hboneListen: LOOPBACK,
    adminListen: LOOPBACK,
    metricsListen: null,
    readinessListen: null,
    otlpEndpoint: undefined,
  });
  t.teardown(() => waypoint.close());
  return { name, agents, waypoint, change, ca: ca.handle, agentTokens: ca.agentTokens };
}

function caOptions(t: Teardowns) {
  const stateDir = mkdtempSync(join(tmpdir(), 'weft-parity-ca-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  return {
    stateDir,
    trustDomain: TRUST_DOMAIN,
    grpcListen: LOOPBACK,
    httpListen: null,
    defaultTtlSeconds: DEFAULT_WORKLOAD_TTL_S,
    maxTtlSeconds: MAX_WORKLOAD_TTL_S,
    servingDnsNames: ['localhost'],
    servingIps: ['127.0.0.1'],
  };
}

/** The CA as `weft ca serve --config file:DIR` runs it: bootstrap tokens, the config store as placement. */
async function fileCa(t: Teardowns, configSource: string) {
  const options = caOptions(t);
  const store = new Store();
  const source = createConfigSource(configSource);
  await source.start(store);
  t.teardown(() => source.stop());
  const file = join(options.stateDir, NODE_TOKENS_FILE);
  const agentTokens = [createNodeToken(file, 'node-1'), createNodeToken(file, 'node-2')] as const;
  const handle = await startCa({ ...options, placement: store });
  t.teardown(() => handle.close());
  return { handle, agentTokens };
}

/** The CA as `weft ca serve --auth kubernetes` runs it; the agents' pods hold projected tokens. */
async function apiCa(t: Teardowns, server: KubeApiServer, kubeconfigPath: string) {
  const agent = (node: string): string =>
    tokenForPod(server, 'weft-system', `weft-agent-${node}`, 'weft-agent');
  const agentTokens = [agent('node-1'), agent('node-2')] as const;
  const handle = await startCa({
    ...caOptions(t),
    kubernetes: {
      kubeconfigPath,
      tokenReview: { audience: 'istio-ca', trustedNodeAccounts: ['weft-system/weft-agent'] },
    },
  });
  t.teardown(() => handle.close());
  return { handle, agentTokens };
}

async function fileWorld(t: Teardowns): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-parity-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const manifests = join(dir, 'manifests');
  mkdirSync(manifests);
  let objects = [...CLUSTER_TABLE];
  const write = () =>
    writeFileSync(
      join(manifests, 'cluster.json'),
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }),
    );
  write();
  const configSource = `file:${manifests}`;
  return components(
    t,
    'file',
    configSource,
    async (changed, deleted) => {
      const gone = new Set([...changed, ...deleted].map(id));
      objects = [...objects.filter((o) => !gone.has(id(o))), ...changed];
      write();
    },
    await fileCa(t, configSource),
  );
}

async function apiWorld(t: Teardowns): Promise<{ world: World; server: KubeApiServer }> {
  const server = await startKubeApiServer(t, CLUSTER_TABLE);
  const kubeconfig = kubeconfigFor(t, server);
  const world = await components(
    t,
    'kubernetes',
    `kubernetes:${kubeconfig}`,
    async (changed, deleted) => {
      for (const object of deleted)
        server.delete(object.kind, object.metadata.namespace ?? '', object.metadata.name);
      for (const object of changed) {
        if (server.get(object.kind, object.metadata.namespace ?? '', object.metadata.name) === undefined)
          server.create(object);
        else server.update(object);
      }
    },
    await apiCa(t, server, kubeconfig),
  );
  return { world, server };
}

function id(object: KubeObject): string {
  return `${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`;
}

/**
 * A component's /config_dump without what differs by nature between sources: versions, certificate
 * timing, the order objects arrived in (workloads are sorted), and where a rejected object came from
 * (a file and document, or nothing: the rejection itself must be the same).
 */
async function configDump(address: { host: string; port: number }): Promise<Record<string, unknown>> {
  const res = await fetch(`http://${address.host}:${address.port}/config_dump`);
  const dump = (await res.json()) as Record<string, unknown>;
  const { configVersion: _version, certificates: _certs, tunnels: _tunnels, ...rest } = dump;
  if (Array.isArray(rest.workloads))
    rest.workloads = (rest.workloads as { uid: string }[]).sort((a, b) => a.uid.localeCompare(b.uid));
  if (Array.isArray(rest.rejectedConfig))
    rest.rejectedConfig = (rest.rejectedConfig as string[]).map((line) =>
      line.slice(Math.max(0, line.search(/[A-Z][A-Za-z]+ [a-z0-9.-]+(\/[a-z0-9.-]+)?: /))),
    );
  return rest;
}

const CA_REQUESTS = [
  'spiffe://cluster.local/ns/shop/sa/web',
  'spiffe://cluster.local/ns/shop/sa/client',
  'spiffe://cluster.local/ns/data/sa/db',
  'spiffe://cluster.local/ns/shop/sa/waypoint',
  'spiffe://other.example/ns/shop/sa/web',
];

const DESTINATIONS = [
  { ip: '10.96.0.10', port: 80 }, // shop/web: bound to the waypoint
  { ip: '10.96.0.20', port: 5432 }, // data/db: tunnel to db-0 on node-2
  { ip: '10.96.0.20', port: 9999 }, // no such port
  { ip: '10.1.2.20', port: 5432 }, // db-0 by pod address
  { ip: '10.1.1.30', port: 8080 }, // a pod outside the mesh
  { ip: '192.0.2.1', port: 443 }, // outside the cluster
];

/** What the components decide, in a form two worlds can be compared in. */
async function observe(world: World) {
  const [node1, node2] = world.agents as [AgentHandle, AgentHandle];
  const plans = DESTINATIONS.map((dst) =>
    planOutbound(node1.store, new LocalWorkloads(node1.store, 'node-1', TRUST_DOMAIN), dst, () => 0),
  );
  const db = node2.store.workload('data', 'db-0');
  const verdicts = [
    { srcIp: '10.1.1.10', srcIdentity: parseSpiffeId('spiffe://cluster.local/ns/shop/sa/web') },
    { srcIp: '10.1.1.11', srcIdentity: parseSpiffeId('spiffe://cluster.local/ns/shop/sa/client') },
    { srcIp: '10.1.1.30', srcIdentity: undefined },
  ].map((src) =>
    db === undefined
      ? 'no db-0'
      : new PolicyAuthorizer(node2.store).authorize(db, { ...src, dstIp: '10.1.2.20', dstPort: 5432 }),
  );
  const table = compileRoutingTable(world.waypoint.store, { namespace: 'shop', name: 'waypoint' });
  const routes = ['/api/items', '/missing', '/elsewhere'].map((path) => {
    const selection = selectRoute(table, {
      dialled: { ip: '10.96.0.10', port: 80 },
      clientNamespace: 'shop',
      method: 'GET',
      path,
      query: '',
      headers: { host: 'web.shop.svc.cluster.local' },
    });
    return selection.kind === 'matched'
      ? `${selection.route.namespace}/${selection.route.name} rule ${selection.rule.index}`
      : selection.kind;
  });
  const grants: string[] = [];
  for (const [node, token] of world.agentTokens.entries())
    for (const identity of CA_REQUESTS) {
      const csr = (await opensslCsr({ extensions: [spiffeSanExt(identity)] })).csrPem;
      const answer = await rawCreateCertificate(world.ca.grpcAddress, world.ca.authority.rootsPem, {
        token,
        identity,
        csr,
      });
      grants.push(`node-${node + 1} ${identity.replace('spiffe://', '')}: ${grpc.status[answer.code]}`);
    }
  return {
    grants,
    identities: world.agents.map((agent, i) =>
      [...identitiesForNode(agent.store, `node-${i + 1}`, TRUST_DOMAIN)].sort(),
    ),
    agentDumps: await Promise.all(world.agents.map((agent) => configDump(agent.adminAddress))),
    waypointDump: await configDump(world.waypoint.adminAddress ?? LOOPBACK),
    plans: JSON.parse(JSON.stringify(plans)) as unknown,
    verdicts: JSON.parse(JSON.stringify(verdicts)) as unknown,
    routes,
  };
}

/** Resolves once every component's store satisfies `holds`. */
async function until(world: World, what: string, holds: (store: ConfigStore) => boolean): Promise<void> {
  const stores = [...world.agents.map((a) => a.store), world.waypoint.store];
  const deadline = Date.now() + WAIT_MS;
  while (!stores.every(holds)) {
    if (Date.now() > deadline) throw new Error(`${world.name}: timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

t.test(
  'file: and kubernetes: give the agent and the waypoint the same world, before and after changes',
  async (t) => {
    const file = await fileWorld(t);
    const { world: api, server } = await apiWorld(t);

    const before = await observe(file);
    t.same(await observe(api), before, 'the same decisions from both sources');
    // And they are the right ones (so that agreeing on nothing cannot pass).
    t.same(before.identities, [
      ['spiffe://cluster.local/ns/shop/sa/client', 'spiffe://cluster.local/ns/shop/sa/web'],
      ['spiffe://cluster.local/ns/data/sa/db', 'spiffe://cluster.local/ns/shop/sa/web'],
    ]);
    t.match(before.plans, [
      { kind: 'hbone', nextHop: { ip: '10.1.2.12' }, expectedIdentity: /sa\/waypoint$/ },
      { kind: 'hbone', nextHop: { ip: '10.1.2.20', port: 15008 }, expectedIdentity: /sa\/db$/ },
      { kind: 'refuse' },
      { kind: 'hbone', nextHop: { ip: '10.1.2.20' } },
      { kind: 'passthrough' },
      { kind: 'passthrough' },
    ]);
    t.match(before.verdicts, [{ allowed: true }, { allowed: false }, { allowed: false }]);
    t.same(before.routes, ['shop/web rule 0', 'shop/web rule 1', 'not-found']);
    t.same(
      before.grants,
      [
        'cluster.local/ns/shop/sa/web: OK',
        'cluster.local/ns/shop/sa/client: OK',
        'cluster.local/ns/data/sa/db: PERMISSION_DENIED',
        'cluster.local/ns/shop/sa/waypoint: PERMISSION_DENIED',
        'other.example/ns/shop/sa/web: PERMISSION_DENIED',
        'cluster.local/ns/shop/sa/web: OK',
        'cluster.local/ns/shop/sa/client: PERMISSION_DENIED',
        'cluster.local/ns/data/sa/db: OK',
        'cluster.local/ns/shop/sa/waypoint: OK',
        'other.example/ns/shop/sa/web: PERMISSION_DENIED',
      ].map((line, i) => `node-${i < 5 ? 1 : 2} ${line}`),
    );
    t.match(before.waypointDump, { rejectedConfig: [/bad-action/] });

    // The same changes, while the API side loses its watches, its history and then itself.
    const web1 = CLUSTER_TABLE.find((o) => o.metadata.name === 'web-1') as KubeObject;
    const dbPolicy = CLUSTER_TABLE.find((o) => o.metadata.name === 'db-from-web') as KubeObject;
    const changed: KubeObject[] = [
      {
        ...dbPolicy,
        spec: {
          ...(dbPolicy.spec as object),
          rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/client'] } }] }],
        },
      },
    ];
    server.dropWatches();
    await file.change([], [web1]);
    await api.change([], [web1]);
    await until(api, 'web-1 is gone', (store) => store.workload('shop', 'web-1') === undefined);
    await server.close();
    await file.change(changed, []);
    await api.change(changed, []);
    server.compact();
    await server.listen();
    const late = {
      ...web1,
      metadata: { ...web1.metadata, name: 'web-2', uid: 'uid-shop-web-2' },
      spec: { ...(web1.spec as object), nodeName: 'node-1' },
      status: { phase: 'Running', podIP: '10.1.1.12', podIPs: [{ ip: '10.1.1.12' }] },
    };
    await server.restart();
    await file.change([late], []);
    await api.change([late], []);
    for (const world of [file, api])
      await until(world, 'every change is in', (store) => {
        const policy = store.authorizationPoliciesFor(store.workload('data', 'db-0')!);
        return (
          store.workload('shop', 'web-1') === undefined &&
          store.workload('shop', 'web-2') !== undefined &&
          JSON.stringify(policy).includes('sa/client')
        );
      });

    const after = await observe(file);
    t.same(await observe(api), after, 'the same decisions after the changes');
    t.same(after.identities[0], [
      'spiffe://cluster.local/ns/shop/sa/client',
      'spiffe://cluster.local/ns/shop/sa/web',
    ]);
    t.same(after.identities[1], ['spiffe://cluster.local/ns/data/sa/db'], 'web-1 left node-2');
    t.match(after.grants, [/web: OK$/, /client: OK$/], 'node-1 may still ask for web (web-2 moved there)');
    t.match(after.grants.slice(5), [/web: PERMISSION_DENIED$/], 'node-2 no longer may');
    t.match(
      after.verdicts,
      [{ allowed: false }, { allowed: true }, { allowed: false }],
      'the new policy applies',
    );
  },
);
