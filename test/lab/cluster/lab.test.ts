// `weft lab up --nodes 2 --demo` from the build, as a user runs it (root only): pods get addresses in
// their node's CIDR and reach each other directly across the fabric with their own IPs as peers,
// Services get ClusterIPs, manifests drive the pods, invalid applies change nothing, and `weft lab
// down` leaves nothing behind.
import t from 'tap';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse, stringify } from 'yaml';
import type { LabState, PodState } from '../../../lab/cluster/state.js';
import { alive, labDir, labUnavailable, leftovers, readState, skipReason, weft } from './lab-harness.js';

const unavailable = await labUnavailable();

/** Polls the state file until `check` passes (at most `ms`): the controller writes it on every change. */
async function until(
  dir: string,
  what: string,
  check: (s: LabState) => boolean,
  ms = 15_000,
): Promise<LabState> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const state = readState(dir);
    if (check(state)) return state;
    await sleep(100);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

function pod(state: LabState, name: string): PodState | undefined {
  return state.pods.find((p) => p.namespace === 'default' && p.name === name);
}

function inCidr(ip: string, cidr: string): boolean {
  const prefix = cidr.split('.').slice(0, 3).join('.');
  return cidr.endsWith('/24') && ip.startsWith(`${prefix}.`);
}

function folderSnapshot(dir: string): string {
  return readdirSync(dir)
    .sort()
    .map((f) => `${f} ${statSync(join(dir, f)).mtimeMs}\n${readFileSync(join(dir, f), 'utf8')}`)
    .join('\n');
}

t.test(
  'weft lab up --nodes 2 --demo, then down',
  { skip: skipReason(t, unavailable), timeout: 90_000 },
  async (t) => {
    t.plan(15);
    const dir = labDir();
    t.teardown(async () => {
      await weft(['lab', 'down', '--dir', dir]);
      rmSync(dirname(dir), { recursive: true, force: true });
    });

    const up = await weft(['lab', 'up', '--nodes', '2', '--demo', '--dir', dir]);
    t.equal(up.code, 0, `lab up exit code (stderr: ${up.stderr})`);
    t.match(up.stdout, /lab [0-9a-f]{6} \(ready\)/, 'prints what it made');
    const state = readState(dir);
    t.equal(state.phase, 'ready');
    t.same(
      state.nodes.map((n) => [n.name, n.podCidr, n.uplinkIp]),
      [
        ['node-1', '10.77.1.0/24', '10.77.0.1'],
        ['node-2', '10.77.2.0/24', '10.77.0.2'],
      ],
    );

    await t.test('pods have addresses in their node CIDR, a veth each, and run', async (t) => {
      const names = ['client', 'echo-v1', 'echo-v2', 'tcp-echo'];
      t.plan(names.length * 4);
      for (const name of names) {
        const p = pod(state, name);
        const node = state.nodes.find((n) => n.name === p?.node);
        t.ok(p && node && inCidr(p.ip, node.podCidr), `${name}: ${p?.ip} on ${p?.node} (${node?.podCidr})`);
        t.equal(p?.phase, 'ready', `${name} ready`);
        t.ok(p?.process && alive(p.process.pid), `${name} runs`);
        t.match(p?.veth, /^wp[0-9a-f]{13}$/);
      }
    });

    await t.test('client reaches echo directly across the fabric, seen with its own IP', async (t) => {
      t.plan(4);
      const client = pod(state, 'client')!;
      const echo = pod(state, 'echo-v2')!;
      t.not(client.node, echo.node, 'the request crosses nodes');
      const r = await weft([
        'lab',
        'exec',
        '--dir',
        dir,
        'default/client',
        '--',
        'curl',
        '-s',
        '--max-time',
        '5',
        `http://${echo.ip}:8080/x?y=1`,
      ]);
      t.equal(r.code, 0, `curl exit code (stderr: ${r.stderr})`);
      const body = JSON.parse(r.stdout) as {
        pod: string;
        path: string;
        query: unknown;
        peer: { address: string };
        version: string;
      };
      t.match(body, {
        pod: 'echo-v2',
        namespace: 'default',
        service: 'echo',
        version: 'v2',
        path: '/x',
        query: { y: '1' },
      });
      t.equal(body.peer.address, client.ip, 'the peer is the client pod');
    });

    await t.test('Services got ClusterIPs from 10.96.0.0/16, written back to the manifests', async (t) => {
      t.plan(3);
      const echo = state.services.find((s) => s.name === 'echo');
      t.match(echo?.clusterIps[0], /^10\.96\.\d+\.\d+$/);
      t.same(echo?.ports, ['80/TCP->8080']);
      t.match(
        readFileSync(join(state.manifestsDir, 'echo.yaml'), 'utf8'),
        `clusterIP: ${echo?.clusterIps[0]}`,
      );
    });

    await t.test('weft lab status lists nodes, pods and services', async (t) => {
      t.plan(6);
      const s = await weft(['lab', 'status', '--dir', dir]);
      t.equal(s.code, 0);
      t.match(s.stdout, /node-2 +weft-[0-9a-f]{6}-node-2/);
      t.match(s.stdout, /default\/echo-v1 +node-1 +10\.77\.1\.\d+ +wp[0-9a-f]{13} +ready/);
      t.match(s.stdout, /default\/echo +10\.96\.\d+\.\d+/);
      const json = JSON.parse((await weft(['lab', 'status', '--dir', dir, '--json'])).stdout) as {
        controller: { running: boolean };
      };
      t.equal(json.controller.running, true);
      t.equal((await weft(['lab', 'status', '--dir', `${dir}-none`])).code, 3, 'no lab: exit 3');
    });

    await t.test(
      'an invalid weft apply is rejected with file, object and field, and changes nothing',
      async (t) => {
        t.plan(5);
        const bad = join(dirname(dir), 'bad.yaml');
        writeFileSync(
          bad,
          `apiVersion: v1
kind: Pod
metadata: { name: fine, namespace: default }
spec: { nodeName: node-1 }
---
apiVersion: v1
kind: Pod
metadata: { name: broken, namespace: default }
spec:
  nodeName: node-2
  containers: [{ command: [sleep, infinity], ports: [{ containerPort: http }] }]
`,
        );
        const before = folderSnapshot(state.manifestsDir);
        const r = await weft(['apply', '-f', bad, '--dir', dir]);
        t.equal(r.code, 1);
        t.match(
          r.stderr,
          `${bad} doc 2: Pod default/broken: spec.containers[0].ports[0].containerPort must be a port number 1-65535, got "http"`,
        );
        t.notMatch(r.stdout, /created/);
        t.equal(folderSnapshot(state.manifestsDir), before, 'the manifest folder is untouched');
        t.equal(pod(readState(dir), 'fine'), undefined, 'not even the valid object was applied');
      },
    );

    await t.test('apply starts a pod, a changed command restarts it, deleting it removes it', async (t) => {
      t.plan(10);
      const file = join(dirname(dir), 'extra.yaml');
      const manifest = (port: number) => `apiVersion: v1
kind: Pod
metadata: { name: extra, namespace: default }
spec:
  containers:
    - command: [weft, lab, workload, tcp-echo, --port, '${port}']
      ports: [{ containerPort: ${port} }]
`;
      writeFileSync(file, manifest(7000));
      const r = await weft(['apply', '-f', file, '--dir', dir]);
      t.match(r.stdout, 'Pod default/extra created');
      const first = pod(
        await until(dir, 'extra to be ready', (s) => pod(s, 'extra')?.phase === 'ready'),
        'extra',
      )!;
      t.ok(
        first.node !== '' && first.ip !== '',
        `scheduled to ${first.node} with ${first.ip} (written back)`,
      );
      writeFileSync(file, manifest(7001));
      t.match((await weft(['apply', '-f', file, '--dir', dir])).stdout, 'Pod default/extra configured');
      const second = pod(
        await until(dir, 'extra to restart', (s) => {
          const p = pod(s, 'extra');
          return p?.phase === 'ready' && p.command.includes('7001');
        }),
        'extra',
      )!;
      t.equal(second.ip, first.ip, 'same pod, same IP');
      t.notOk(alive(first.process!.pid), 'the old process is gone');
      // Written straight into the folder (apply would refuse it): the mesh rejects it and keeps the last
      // good version, and so does the lab.
      const inFolder = join(readState(dir).manifestsDir, 'extra.yaml');
      const edited = parse(readFileSync(inFolder, 'utf8')) as {
        spec: { containers: { command: string[]; ports: { containerPort: unknown }[] }[] };
      };
      edited.spec.containers[0]!.command[5] = '7002';
      edited.spec.containers[0]!.ports[0]!.containerPort = 'x';
      writeFileSync(inFolder, stringify(edited));
      const rejected = pod(
        await until(dir, 'the rejection to show', (s) => /rejected/.test(pod(s, 'extra')?.message ?? '')),
        'extra',
      )!;
      t.match(rejected.message, /containerPort must be a port number.*the last good version keeps running/);
      t.same(
        [rejected.process?.pid, rejected.command.includes('7001')],
        [second.process?.pid, true],
        'still the same process',
      );
      rmSync(inFolder);
      await until(dir, 'extra to be removed', (s) => pod(s, 'extra') === undefined);
      t.notOk(alive(second.process!.pid), 'its process is gone');
      const netns = await weft(['lab', 'exec', '--dir', dir, 'default/extra', '--', 'true']);
      t.match(netns.stderr, /no pod default\/extra/);
      t.notOk(existsSync(`/run/netns/${first.netns}`), `${first.netns} deleted`);
    });

    await t.test(
      'weft lab tour: direct before enrolment, identities issued after, the same client answered',
      async (t) => {
        t.plan(5);
        const r = await weft(['lab', 'tour', '--dir', dir]);
        t.equal(r.code, 0, `tour exit code (stderr: ${r.stderr})`);
        t.match(
          r.stdout,
          /1\. default\/client .* namespace not enrolled\n.*peer 10\.77\.1\.10\n.*saw 0 connection/,
        );
        t.match(
          r.stdout,
          /node-1 agent: enrolled, certificate for spiffe:\/\/cluster\.local\/ns\/default\/sa\/client/,
        );
        t.match(
          r.stdout,
          /node-2 agent: enrolled, certificate for spiffe:\/\/cluster\.local\/ns\/default\/sa\/echo/,
        );
        t.match(r.stdout, /3\. the same client .*\n.*peer 10\.77\.1\.10/);
      },
    );

    const beforeDown = readState(dir);
    const down = await weft(['lab', 'down', '--dir', dir]);
    t.equal(down.code, 0, `lab down exit code (stdout: ${down.stdout})`);
    t.same(await leftovers(beforeDown), [], 'no namespace, link, process or state file left');
    const again = await weft(['lab', 'down', '--dir', dir]);
    // Another test's lab may be up meanwhile (tests run two at a time): down then names it as a hint.
    t.equal(again.code, 0, 'down again exits 0');
    t.ok(
      again.stdout.startsWith(`no lab in ${dir}: nothing to do\n`),
      `down again is a no-op (${again.stdout})`,
    );
  },
);
