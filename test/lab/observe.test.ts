// Issue 8's must-shows in a real lab (root only): a denied connection (node agent, L4) and a denied
// request (waypoint, L7) reach `weft observe -f --verdict DENIED` within a second, naming the policy and
// rule; `weft explain` gives the same verdict and rule for the same flow before and after a policy
// change; the policies `weft observe suggest` prints from what was seen, applied, let every observed flow
// through and refuse one that was not seen.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CLI,
  labDir,
  labUnavailable,
  leftovers,
  readState,
  skipReason,
  weft,
} from './cluster/lab-harness.js';
import type { FlowEvent } from '../../core/flows/event.js';

t.setTimeout(240_000);
const unavailable = await labUnavailable();

const CONFIG_WAIT_MS = 20_000;
const principal = (ns: string, sa: string) => `cluster.local/ns/${ns}/sa/${sa}`;

interface Curl {
  readonly code: number;
  readonly status: number;
  readonly body: string;
  readonly stderr: string;
  /** When curl returned (epoch ms). */
  readonly at: number;
}

/** A follower: `weft observe -f …` as a user runs it, its JSON lines with the time each arrived. */
class Follower {
  readonly lines: { at: number; event: FlowEvent }[] = [];
  readonly child: ChildProcess;
  stderr = '';
  constructor(args: readonly string[]) {
    this.child = spawn(process.execPath, [CLI, 'observe', '-f', '-o', 'json', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let pending = '';
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const parsed = JSON.parse(line) as FlowEvent | { type: 'lost' };
        if (parsed.type !== 'lost') this.lines.push({ at: Date.now(), event: parsed as FlowEvent });
      }
    });
    this.child.stderr!.on('data', (c: Buffer) => (this.stderr += c.toString()));
  }
  async waitFor(
    match: (e: FlowEvent) => boolean,
    since: number,
    ms = 3000,
  ): Promise<{ at: number; event: FlowEvent } | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.lines.find((l) => l.at >= since && match(l.event));
      if (found || Date.now() > deadline) return found;
      await sleep(20);
    }
  }
  stop(): void {
    this.child.kill('SIGINT');
  }
}

interface ExplainJson {
  readonly path: string;
  readonly verdict: string;
  readonly policy?: string;
  readonly rule?: number;
  readonly decidedAt: string;
}

t.test(
  'observe, explain and suggest in a lab',
  { skip: skipReason(t, unavailable), timeout: 230_000 },
  async (t) => {
    const dir = labDir();
    const env = ['--dir', dir];
    const followers: Follower[] = [];
    t.teardown(async () => {
      for (const f of followers) f.stop();
      await weft(['lab', 'down', ...env]);
    });
    const up = await weft(['lab', 'up', '--demo', ...env]);
    t.equal(up.code, 0, `lab up: ${up.stderr}`);
    if (up.code !== 0) return;
    const files = mkdtempSync(join(tmpdir(), 'weft-observe-'));
    t.teardown(() => rmSync(files, { recursive: true, force: true }));
    const manifests = readState(dir).manifestsDir;
    const apply = async (name: string, yaml: string): Promise<void> => {
      const file = join(files, `${name}.yaml`);
      writeFileSync(file, yaml);
      const r = await weft(['apply', '-f', file, ...env]);
      t.equal(r.code, 0, `weft apply ${name}${r.code === 0 ? '' : `: ${r.stderr}`}`);
    };
    const remove = (name: string): void => rmSync(join(manifests, `${name}.yaml`), { force: true });

    t.equal(
      (await weft(['label', 'namespace', 'default', 'istio.io/dataplane-mode=ambient', ...env])).code,
      0,
    );
    await apply(
      'trusted',
      `apiVersion: v1
kind: Pod
metadata: { name: trusted, namespace: default, labels: { app: trusted } }
spec: { serviceAccountName: trusted, nodeName: node-1, containers: [{ name: main, command: [sleep, infinity] }] }
`,
    );
    let state = readState(dir);
    for (let deadline = Date.now() + CONFIG_WAIT_MS; Date.now() < deadline; await sleep(200)) {
      state = readState(dir);
      if (state.pods.some((p) => p.name === 'trusted' && p.process)) break;
    }
    const ipOf = (name: string) => state.pods.find((p) => p.namespace === 'default' && p.name === name)!.ip;
    const echoV2 = `${ipOf('echo-v2')}:8080`;
    const vip = `${state.services.find((s) => s.name === 'echo')!.clusterIps[0]}:80`;

    const curl = async (from: string, url: string, method = 'GET'): Promise<Curl> => {
      const r = await weft([
        'lab',
        'exec',
        ...env,
        `default/${from}`,
        '--',
        'curl',
        '-sS',
        '--max-time',
        '5',
        '-X',
        method,
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        url,
      ]);
      return {
        code: r.code,
        status: Number(r.stdout.trim()) || 0,
        body: r.stdout,
        stderr: r.stderr,
        at: Date.now(),
      };
    };
    const until = async (what: string, attempt: () => Promise<boolean>): Promise<boolean> => {
      for (let deadline = Date.now() + CONFIG_WAIT_MS; Date.now() < deadline; await sleep(250))
        if (await attempt()) return true;
      t.fail(`timed out waiting for ${what}`);
      return false;
    };
    const explain = async (args: readonly string[]): Promise<ExplainJson> => {
      const r = await weft(['explain', ...env, '-o', 'json', ...args]);
      t.equal(r.code, 0, `weft explain ${args.join(' ')}${r.code === 0 ? '' : `: ${r.stderr}`}`);
      return JSON.parse(r.stdout) as ExplainJson;
    };
    const recent = async (args: readonly string[]): Promise<FlowEvent[]> => {
      const r = await weft(['observe', ...env, '-o', 'json', '--last', '200', ...args]);
      t.equal(r.code, 0, `weft observe ${args.join(' ')}: ${r.stderr}`);
      return r.stdout
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as FlowEvent);
    };

    // Meshed first: client → echo-v2 captured and tunnelled, seen by node-2's agent.
    await until('client → echo-v2 through the mesh', async () => {
      const r = await curl('client', `http://${echoV2}/hello`);
      if (r.status !== 200) return false;
      await sleep(300);
      const seen = await recent(['--pod', 'default/client', '--type', 'close']);
      return seen.some((e) => e.reporter.name === 'node-2' && e.path === 'tunnel' && e.verdict === 'ALLOWED');
    });

    // --- L4: a DENY policy at echo's agent -----------------------------------------------------------
    const denied = new Follower(['--verdict', 'DENIED', ...env]);
    followers.push(denied);
    // Its start (Node, modules, finding the targets) before the denial: 500 ms was a race on a loaded
    // machine (the follow then began after the event). The latency checked below starts at the refusal.
    await sleep(3000);
    const denyClient = (port: number) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-client, namespace: default }
spec:
  selector: { matchLabels: { app: echo } }
  action: DENY
  rules:
    - to: [{ operation: { ports: ["9999"] } }]
    - from: [{ source: { principals: [${principal('default', 'client')}] } }]
      to: [{ operation: { ports: ["${port}"] } }]
`;
    await apply('deny-client', denyClient(8080));
    let refusal: Curl | undefined;
    await until('the DENY policy in force', async () => {
      refusal = await curl('client', `http://${echoV2}/hello`);
      return refusal.status === 0;
    });
    const l4 = await denied.waitFor(
      (e) => e.reporter.name === 'node-2' && e.destination.pod === 'echo-v2' && e.type === 'close',
      refusal!.at - 2000,
    );
    t.ok(l4, `the denial reached weft observe --verdict DENIED (stderr: ${denied.stderr})`);
    t.match(l4?.event, {
      verdict: 'DENIED',
      policy: 'default/deny-client',
      rule: 1,
      direction: 'inbound',
      source: { pod: 'client' },
    });
    t.ok(
      l4 !== undefined && l4.at - refusal!.at < 1000,
      `within a second of curl's refusal (${l4 ? l4.at - refusal!.at : '-'} ms)`,
    );

    const l4Query = ['--from', 'default/client', '--to', 'default/echo-v2', '--port', '8080'];
    const before = await explain(l4Query);
    t.match(
      before,
      { verdict: 'DENIED', policy: l4?.event.policy, rule: l4?.event.rule, decidedAt: 'destination agent' },
      'explain: same verdict and rule',
    );
    t.equal(before.path, 'tunnel');

    // The change: the rule now names another port. Explain and the data plane both let it through.
    await apply('deny-client', denyClient(8081));
    const after = await explain(l4Query);
    t.equal(after.verdict, 'ALLOWED');
    await until(
      'the changed policy in force',
      async () => (await curl('client', `http://${echoV2}/hello`)).status === 200,
    );
    await sleep(300);
    const allowedNow = (await recent(['--pod', 'default/echo-v2', '--type', 'close']))
      .filter((e) => e.reporter.name === 'node-2')
      .at(-1);
    t.match(allowedNow, { verdict: 'ALLOWED' });
    t.equal(allowedNow?.policy, after.policy, 'the same deciding policy (none) as explain');
    t.equal(allowedNow?.rule, after.rule);
    remove('deny-client');

    // --- L7: a waypoint and a request policy -----------------------------------------------------------
    const wp = await weft(['waypoint', 'apply', '-n', 'default', '--enroll-namespace', ...env]);
    t.equal(wp.code, 0, `waypoint apply: ${wp.stderr}`);
    await apply(
      'deny-admin',
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: default }
spec:
  targetRefs: [{ kind: Service, group: "", name: echo }]
  action: DENY
  rules:
    - to: [{ operation: { methods: [POST], paths: ["/admin/*"] } }]
`,
    );
    let forbidden: Curl | undefined;
    await until('the request policy in force at the waypoint', async () => {
      forbidden = await curl('client', `http://${vip}/admin/users`, 'POST');
      return forbidden.status === 403;
    });
    const l7 = await denied.waitFor(
      (e) => e.type === 'request' && e.http?.path === '/admin/users',
      forbidden!.at - 2000,
    );
    t.ok(l7, 'the denied request reached weft observe --verdict DENIED');
    t.match(l7?.event, {
      reporter: { kind: 'waypoint' },
      verdict: 'DENIED',
      policy: 'default/deny-admin',
      rule: 0,
      http: { method: 'POST', status: 403 },
      service: { name: 'echo' },
    });
    t.ok(
      l7 !== undefined && l7.at - forbidden!.at < 1000,
      `within a second (${l7 ? l7.at - forbidden!.at : '-'} ms)`,
    );
    const l7Query = [
      '--from',
      'default/client',
      '--to-service',
      'default/echo',
      '--port',
      '80',
      '--method',
      'POST',
      '--path',
      '/admin/users',
    ];
    const l7Explained = await explain(l7Query);
    t.equal(l7Explained.path, 'waypoint');
    t.match(l7Explained, {
      verdict: 'DENIED',
      policy: l7?.event.policy,
      rule: l7?.event.rule,
      decidedAt: 'waypoint',
    });
    remove('deny-admin');
    t.equal((await explain(l7Query)).verdict, 'ALLOWED', 'and after the change: allowed');

    // --- Suggest: what was seen, and only that --------------------------------------------------------
    await until(
      'the request policy removed',
      async () => (await curl('client', `http://${vip}/admin/users`, 'POST')).status === 200,
    );
    for (let i = 0; i < 3; i++) {
      t.equal(
        (await curl('client', `http://${vip}/hello`)).status,
        200,
        'client GET /hello via the waypoint',
      );
      t.equal((await curl('client', `http://${echoV2}/direct`)).status, 200, 'client → echo-v2 directly');
    }
    await sleep(500);
    const suggestedFile = join(files, 'suggested.yaml');
    const suggest = await weft([
      'observe',
      'suggest',
      ...env,
      '--namespace',
      'default',
      '--out',
      suggestedFile,
    ]);
    t.equal(suggest.code, 0, `observe suggest: ${suggest.stderr}`);
    const suggested = readFileSync(suggestedFile, 'utf8');
    t.match(suggested, /kind: AuthorizationPolicy/);
    t.match(suggested, new RegExp(principal('default', 'client')));
    t.notMatch(suggested, new RegExp(principal('default', 'trusted')), 'trusted was never seen');
    const applied = await weft(['apply', '-f', suggestedFile, ...env]);
    t.equal(applied.code, 0, `the suggestion applies as it is: ${applied.stderr}`);
    // Every observed flow still goes through …
    await until(
      'the suggested policies in force (trusted refused)',
      async () => (await curl('trusted', `http://${vip}/hello`)).status !== 200,
    );
    const observedHello = await curl('client', `http://${vip}/hello`);
    if (observedHello.status !== 200) {
      // What was suggested and what the mesh saw since: enough to tell a policy gap from a transport race.
      t.comment(suggested);
      t.comment((await weft(['observe', ...env, '--last', '40'])).stdout);
    }
    t.equal(observedHello.status, 200, 'observed: client GET /hello via the waypoint');
    t.equal(
      (await curl('client', `http://${vip}/admin/users`, 'POST')).status,
      200,
      'observed: client POST /admin/users',
    );
    t.equal(
      (await curl('client', `http://${echoV2}/direct`)).status,
      200,
      'observed: client → echo-v2 direct',
    );
    // … and what was not seen does not.
    t.equal(
      (await curl('trusted', `http://${vip}/hello`)).status,
      403,
      'not observed: trusted via the waypoint, 403',
    );
    t.not(
      (await curl('trusted', `http://${echoV2}/direct`)).status,
      200,
      'not observed: trusted → echo-v2 direct, refused',
    );
    t.equal(
      (await curl('client', `http://${vip}/other`, 'DELETE')).status,
      403,
      'not observed: client DELETE /other, 403',
    );

    for (const f of followers) f.stop();
    const down = await weft(['lab', 'down', ...env]);
    t.equal(down.code, 0, `lab down: ${down.stderr}`);
    t.same(await leftovers(state), [], 'nothing left behind');
  },
);
