// The chart's deployment on loopback, as real processes from the build, all fed by the API server
// double: `weft ca serve --auth kubernetes` (root in a Secret, published as a ConfigMap), a node
// agent with `--config kubernetes` and its pod's projected token, and a waypoint with `--route-status`.
// The agent gets its pods' certificates through TokenReview and the API's placement check, the
// waypoint its own identity with its own token, and the HTTPRoute gets its status.
import t from 'tap';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, spawnWeft, stopChild, waitFor, waitForHttpOk, weftCliPath } from '../../lab/processes.js';
import { CLUSTER_TABLE } from '../helpers/cluster-table.js';
import { kubeconfigFor, startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server.js';
import { tokenForPod } from '../ca/kubernetes-helpers.js';

const CLI = weftCliPath();
const skip = existsSync(CLI) ? false : `no build at ${CLI}: run npm run build`;

/** A projected service-account token for a pod of the table, written where the kubelet would mount it. */
function tokenFile(server: KubeApiServer, dir: string, namespace: string, pod: string, sa: string): string {
  const path = join(dir, `${pod}.token`);
  writeFileSync(path, tokenForPod(server, namespace, pod, sa));
  return path;
}

t.test('CA, agent and waypoint processes on the API server double', { skip }, async (t) => {
  const server = await startKubeApiServer(t, CLUSTER_TABLE);
  const config = `kubernetes:${kubeconfigFor(t, server)}`;
  const dir = mkdtempSync(join(tmpdir(), 'weft-kube-processes-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'weft.log');
  const children: ReturnType<typeof spawnWeft>[] = [];
  t.teardown(async () => {
    for (const child of children.reverse()) await stopChild(child);
  });
  const failed = (what: string) => () => {
    for (const child of children)
      if (child.exitCode !== null) throw new Error(`${what}: a process exited (see ${log})`);
  };

  const [caGrpc, caHttp] = [await freePort(), await freePort()];
  children.push(
    spawnWeft(
      [
        'ca',
        'serve',
        '--config',
        config,
        '--auth',
        'kubernetes',
        '--root-secret',
        'weft-system/weft-ca-root',
        '--dir',
        join(dir, 'ca'),
        '--listen',
        `127.0.0.1:${caGrpc}`,
        '--http-listen',
        `127.0.0.1:${caHttp}`,
      ],
      log,
    ),
  );
  await waitForHttpOk('the CA', `http://127.0.0.1:${caHttp}/healthz/ready`);
  // What the kubelet mounts from the ConfigMap the CA publishes.
  const published = await waitFor('the root ConfigMap', async () => {
    failed('the CA')();
    return (server.get('ConfigMap', 'weft-system', 'weft-ca-root-cert')?.data as Record<string, string>)?.[
      'root-cert.pem'
    ];
  });
  const rootFile = join(dir, 'root-cert.pem');
  writeFileSync(rootFile, published);
  const caFlags = [
    '--ca-root',
    rootFile,
    '--ca-address',
    `127.0.0.1:${caGrpc}`,
    '--ca-server-name',
    'localhost',
  ];

  const [admin, readiness] = [await freePort(), await freePort()];
  children.push(
    spawnWeft(
      [
        'agent',
        'run',
        '--node',
        'node-1',
        '--config',
        config,
        '--token-file',
        tokenFile(server, dir, 'weft-system', 'weft-agent-node-1', 'weft-agent'),
        ...caFlags,
        '--admin',
        `127.0.0.1:${admin}`,
        '--readiness',
        `127.0.0.1:${readiness}`,
        '--hbone',
        'off',
        '--socks5',
        'off',
        '--metrics',
        'off',
      ],
      log,
    ),
  );
  await waitForHttpOk('the agent', `http://127.0.0.1:${readiness}/healthz/ready`);
  const issued = await waitFor('the agent to hold its pods certificates', async () => {
    failed('the agent')();
    const certs = (await (await fetch(`http://127.0.0.1:${admin}/certs`)).json()) as {
      certificates: { spiffeId: string; state: string }[];
    };
    const ready = certs.certificates.filter((c) => c.state === 'available');
    return ready.length >= 2 ? ready.map((c) => c.spiffeId).sort() : undefined;
  });
  t.same(
    issued,
    ['spiffe://cluster.local/ns/shop/sa/client', 'spiffe://cluster.local/ns/shop/sa/web'],
    "node-1's enrolled pods, through TokenReview",
  );

  const waypointReady = await freePort();
  children.push(
    spawnWeft(
      [
        'waypoint',
        'run',
        '--name',
        'waypoint',
        '--namespace',
        'shop',
        '--node',
        'node-2',
        '--config',
        config,
        '--token-file',
        tokenFile(server, dir, 'shop', 'waypoint-0', 'waypoint'),
        ...caFlags,
        '--hbone',
        '127.0.0.1:0',
        '--admin',
        'off',
        '--metrics',
        'off',
        '--readiness',
        `127.0.0.1:${waypointReady}`,
        '--route-status',
        '--id',
        'waypoint-0',
      ],
      log,
    ),
  );
  await waitForHttpOk(
    'the waypoint (its own certificate first)',
    `http://127.0.0.1:${waypointReady}/healthz/ready`,
  );
  const parents = await waitFor('the HTTPRoute status', async () => {
    failed('the waypoint')();
    return (server.get('HTTPRoute', 'shop', 'web')?.status as { parents?: unknown[] } | undefined)?.parents;
  });
  t.match(parents, [{ controllerName: 'istio.io/mesh-controller', parentRef: { name: 'web' } }]);
});
