// L4 AuthorizationPolicy and PeerAuthentication on captured traffic, end to end on the real kernel. In
// the enrolled demo namespace a pod's plain `curl` (no proxy settings) is captured by tc eBPF and carried
// over HBONE, and the destination's agent decides it by the policies in the lab's manifest folder; a pod
// outside the mesh is captured at echo's side into the agent's plaintext inbound (:15006), where STRICT
// refuses it. Every refusal must reach curl at once as a close or reset (never a hang), and the deciding
// agent's access log must say why. Root only (skips with the reason elsewhere, fails under CI).
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDir, labUnavailable, leftovers, readState, skipReason, weft } from './cluster/lab-harness.js';
import { run } from '../helpers/exec.js';

// One lab for everything (lab up ~3 s, down ~2 s); the policy steps are many short curls and waits.
t.setTimeout(180_000);

const unavailable = await labUnavailable();

const TRUST_DOMAIN = 'cluster.local';
/** What AuthorizationPolicy principals say (no scheme). */
const principal = (ns: string, sa: string) => `${TRUST_DOMAIN}/ns/${ns}/sa/${sa}`;
/** What the access log says. */
const spiffe = (ns: string, sa: string) => `spiffe://${principal(ns, sa)}`;
/** The DENY policy istiod makes of an effective STRICT mode (root namespace istio-system). */
const STATIC_STRICT = 'istio-system/istio_converted_static_strict';

/**
 * curl's exits for a connection the far end closed or reset: 7 (reset before curl saw it connected),
 * 52 (closed without a reply), 55 (reset while sending the request), 56 (reset while reading). 28
 * (--max-time) is a hang, i.e. a failure.
 */
const CLOSED_OR_RESET = [7, 52, 55, 56];
/** A refusal must reach curl well inside its --max-time (`weft lab exec` itself costs ~0.3 s). */
const FAST_MS = 3000;
/** How long a config change (file → both agents) may take to be in force. */
const CONFIG_WAIT_MS = 15_000;
/** How long a closed connection's access-log line may take to appear (written at close). */
const LOG_WAIT_MS = 3000;

type LogEntry = Readonly<Record<string, unknown>>;

/** The agent's access-log lines ("connection complete", one per connection, written at close). */
function accessLog(dir: string, node: string): LogEntry[] {
  const entries: LogEntry[] = [];
  for (const line of readFileSync(join(dir, 'logs', `agent-${node}.log`), 'utf8').split('\n')) {
    if (!line.includes('"msg":"connection complete"')) continue;
    try {
      entries.push(JSON.parse(line) as LogEntry);
    } catch {
      // a line still being written; it is read again on the next poll
    }
  }
  return entries;
}

/** Each field equals (or, for a RegExp, matches) the entry's; `undefined` means the field is absent. */
function matches(entry: LogEntry, want: Readonly<Record<string, unknown>>): boolean {
  return Object.entries(want).every(([k, v]) =>
    v instanceof RegExp ? typeof entry[k] === 'string' && v.test(entry[k]) : entry[k] === v,
  );
}

/** Waits (bounded) for an access-log line after the first `since` that matches `want`. */
async function logged(
  dir: string,
  node: string,
  since: number,
  want: Readonly<Record<string, unknown>>,
): Promise<LogEntry | undefined> {
  const deadline = Date.now() + LOG_WAIT_MS;
  for (;;) {
    const found = accessLog(dir, node)
      .slice(since)
      .find((e) => matches(e, want));
    if (found || Date.now() > deadline) return found;
    await sleep(100);
  }
}

/** The source IPs of the live inbound connections in an agent's /config_dump (none if unreadable). */
function liveInbound(configDump: string): string[] {
  try {
    const dump = JSON.parse(configDump) as { tunnels?: { inbound?: { src: string }[] } };
    return (dump.tunnels?.inbound ?? []).map((c) => c.src);
  } catch {
    return [];
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

interface Curl {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Repeats `attempt` (bounded by `ms`) until `done` holds for its result; returns the last result. */
async function until(
  attempt: () => Promise<Curl>,
  done: (r: Curl) => boolean,
  ms = CONFIG_WAIT_MS,
): Promise<Curl> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await attempt();
    if (done(r) || Date.now() > deadline) return r;
    await sleep(200);
  }
}

/** A pod that only sleeps: a shell for curl, with its own namespace, service account and labels. */
function sleeper(
  ns: string,
  name: string,
  node: string,
  labels: Readonly<Record<string, string>> = {},
): string {
  const all = Object.entries({ app: name, ...labels })
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  return `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${ns}, labels: { ${all} } }
spec:
  serviceAccountName: ${name}
  nodeName: ${node}
  containers: [{ name: main, image: none, command: [sleep, infinity] }]
`;
}

t.test(
  'AuthorizationPolicy ALLOW/DENY and PeerAuthentication STRICT decide captured connections',
  { skip: skipReason(t, unavailable), timeout: 170_000 },
  async (t) => {
    const dir = labDir();
    const env = ['--dir', dir];
    const up = await weft(['lab', 'up', '--demo', ...env]);
    // Safety net if an assertion throws; the normal path takes the lab down below and checks it.
    t.teardown(async () => void (await weft(['lab', 'down', ...env])));
    t.equal(up.code, 0, `lab up: ${up.stderr}`);
    if (up.code !== 0) return;

    const files = mkdtempSync(join(tmpdir(), 'weft-policy-'));
    const manifests = readState(dir).manifestsDir;
    const apply = async (name: string, yaml: string): Promise<void> => {
      const file = join(files, `${name}.yaml`);
      writeFileSync(file, yaml);
      const r = await weft(['apply', '-f', file, ...env]);
      t.equal(r.code, 0, `weft apply ${name}${r.code === 0 ? '' : `: ${r.stderr}`}`);
    };
    // `weft apply` puts new objects in <manifests>/<file name>.yaml; deleting it deletes them.
    const remove = (name: string): void => {
      const file = join(manifests, `${name}.yaml`);
      t.ok(existsSync(file), `${name}.yaml is in the manifest folder`);
      rmSync(file, { force: true });
    };

    // Enrol the demo namespace; add a meshed client with another service account (default/trusted),
    // a pod of a namespace outside the mesh (outside/stranger) and an opted-out pod of the enrolled
    // namespace on echo-v2's node (default/optout).
    const label = await weft(['label', 'namespace', 'default', 'istio.io/dataplane-mode=ambient', ...env]);
    t.equal(label.code, 0, 'namespace default enrolled');
    await apply(
      'extra-pods',
      [
        'apiVersion: v1\nkind: Namespace\nmetadata: { name: outside }\n',
        sleeper('default', 'trusted', 'node-1'),
        sleeper('outside', 'stranger', 'node-1'),
        sleeper('default', 'optout', 'node-2', { 'istio.io/dataplane-mode': 'none' }),
      ].join('---\n'),
    );
    const extra = ['default/trusted', 'outside/stranger', 'default/optout'];
    let state = readState(dir);
    for (let deadline = Date.now() + 20_000; Date.now() < deadline; await sleep(200)) {
      state = readState(dir);
      const started = state.pods.filter(
        (p) => extra.includes(`${p.namespace}/${p.name}`) && (p.phase === 'ready' || p.phase === 'running'),
      );
      if (started.length === extra.length) break;
    }
    const pod = (ns: string, name: string) => state.pods.find((p) => p.namespace === ns && p.name === name);
    for (const p of extra) t.ok(pod(...(p.split('/') as [string, string]))?.process, `${p} runs`);
    const echoV1 = `${pod('default', 'echo-v1')!.ip}:8080`;
    const echoV2 = `${pod('default', 'echo-v2')!.ip}:8080`;
    const echoVip = `${state.services.find((s) => s.name === 'echo')!.clusterIps[0]}:80`;
    const node2Netns = state.nodes.find((n) => n.name === 'node-2')!.netns;

    const curl = async (
      from: string,
      target: string,
      opts: { headers?: readonly string[]; maxTime?: number } = {},
    ): Promise<Curl> => {
      const t0 = Date.now();
      const r = await weft([
        'lab',
        'exec',
        ...env,
        from,
        '--',
        'curl',
        '-sS',
        '--max-time',
        String(opts.maxTime ?? 5),
        ...(opts.headers ?? []).flatMap((h) => ['-H', h]),
        '-w',
        '\n%{time_total}',
        `http://${target}/policy`,
      ]);
      // curl's own clock for the request (printed last), not the wall time around `weft lab exec`,
      // which a busy machine stretches by seconds; the wall time only if curl printed none.
      const lines = r.stdout.trimEnd().split('\n');
      const last = lines.at(-1) ?? '';
      const seconds = /^\d+\.\d+$/.test(last) ? Number(last) : NaN;
      return Number.isFinite(seconds)
        ? { ...r, stdout: lines.slice(0, -1).join('\n'), ms: Math.round(seconds * 1000) }
        : { ...r, ms: Date.now() - t0 };
    };
    const answeredBy = (r: Curl, echo: string) => r.code === 0 && r.stdout.includes(`"pod": "${echo}"`);
    const mark = (node: string) => accessLog(dir, node).length;

    /** `from` reaches `target` (answered by pod `echo`), and `node`'s agent logged it as `want`. */
    const reaches = async (
      from: string,
      target: string,
      echo: string,
      node: string,
      want: Readonly<Record<string, unknown>>,
      what: string,
    ): Promise<void> => {
      const since = mark(node);
      const r = await curl(from, target);
      t.ok(
        answeredBy(r, echo),
        `${what}: answered by ${echo}${r.code === 0 ? '' : ` (curl ${r.code} ${r.stderr})`}`,
      );
      t.ok(await logged(dir, node, since, want), `${what}: ${node}'s access log has ${JSON.stringify(want)}`);
    };

    /** `from` is refused at once (close/reset, no hang, no answer), and `node`'s agent logged it as `want`. */
    const refused = async (
      from: string,
      target: string,
      node: string,
      want: Readonly<Record<string, unknown>>,
      what: string,
    ): Promise<void> => {
      const since = mark(node);
      const r = await curl(from, target);
      t.ok(
        CLOSED_OR_RESET.includes(r.code),
        `${what}: closed or reset (curl ${r.code} ${r.stderr.trim()}${r.stdout.slice(0, 60)})`,
      );
      t.ok(r.ms < FAST_MS, `${what}: refused at once (${r.ms} ms), not a hang`);
      t.ok(await logged(dir, node, since, want), `${what}: ${node}'s access log has ${JSON.stringify(want)}`);
    };

    /** Waits (bounded) until a config change shows: `from` → `target` answered (or refused). */
    const settled = async (from: string, target: string, answered: boolean, what: string) => {
      const r = await until(
        () => curl(from, target),
        (r) => (r.code === 0) === answered,
      );
      t.equal(r.code === 0, answered, `${what} (curl ${r.code})`);
    };

    // --- Before any policy (PERMISSIVE): who is captured where -------------------------------------
    // Meshed pods: captured at their own side, tunnelled, the destination agent proves both identities.
    // The first connections wait for capture to be attached to the new pods' veths and for their SVIDs.
    for (const sa of ['client', 'trusted']) {
      let through = false;
      for (let deadline = Date.now() + CONFIG_WAIT_MS; !through && Date.now() < deadline;) {
        const since = mark('node-2');
        const r = await curl(`default/${sa}`, echoV2);
        through =
          answeredBy(r, 'echo-v2') &&
          (await logged(dir, 'node-2', since, {
            component: 'agent.inbound',
            'src.identity': spiffe('default', sa),
            verdict: 'allowed',
          })) !== undefined;
        if (!through) await sleep(200);
      }
      t.ok(through, `default/${sa} → echo-v2 is captured and tunnelled (node-2 inbound proved its SVID)`);
    }
    // Outside the mesh: not captured at the source, captured at echo's side into :15006 (no identity).
    const sinceStranger = mark('node-1');
    await reaches(
      'outside/stranger',
      echoV2,
      'echo-v2',
      'node-2',
      {
        component: 'agent.inbound-plaintext',
        'src.workload': 'stranger',
        'src.identity': undefined,
        'dst.addr': echoV2,
        verdict: 'allowed',
      },
      'PERMISSIVE: outside/stranger → echo-v2 (plaintext inbound)',
    );
    t.notOk(
      accessLog(dir, 'node-1')
        .slice(sinceStranger)
        .some((e) => e['src.workload'] === 'stranger'),
      "outside/stranger's own agent (node-1) saw nothing of it: it is not in the mesh",
    );

    // --- 1. ALLOW from another service account: the client is refused, the allowed SA is not -------
    await apply(
      'allow-trusted',
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-trusted, namespace: default }
spec:
  selector: { matchLabels: { app: echo } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: [${principal('default', 'trusted')}] } }]
`,
    );
    await settled('default/client', echoV2, false, 'ALLOW trusted: in force for the client');
    const sinceCross = mark('node-1');
    await refused(
      'default/client',
      echoV2,
      'node-2',
      {
        component: 'agent.inbound',
        'src.identity': spiffe('default', 'client'),
        'dst.workload': 'echo-v2',
        verdict: 'denied',
        reason: 'allow policies exist, but none allowed',
        response_flags: 'DENY',
      },
      'ALLOW trusted: client → echo-v2 (node-2 decides)',
    );
    t.ok(
      await logged(dir, 'node-1', sinceCross, {
        component: 'agent.outbound',
        'src.workload': 'client',
        'dst.workload': 'echo-v2',
        verdict: 'denied',
        response_flags: 'DENY',
      }),
      "ALLOW trusted: the client's own agent (node-1) logs the refused tunnel as denied",
    );
    // Same node: client and echo-v1 are both on node-1, the tunnel never leaves the agent.
    const sinceSame = mark('node-1');
    await refused(
      'default/client',
      echoV1,
      'node-1',
      {
        component: 'agent.inbound',
        'src.identity': spiffe('default', 'client'),
        'dst.workload': 'echo-v1',
        verdict: 'denied',
        reason: 'allow policies exist, but none allowed',
        response_flags: 'DENY',
      },
      'ALLOW trusted: client → echo-v1 on its own node (node-1 decides)',
    );
    t.ok(
      await logged(dir, 'node-1', sinceSame, {
        component: 'agent.outbound',
        'src.workload': 'client',
        'dst.workload': 'echo-v1',
        verdict: 'denied',
        response_flags: 'DENY',
      }),
      'ALLOW trusted: the same-node outbound line says denied too',
    );
    // By ClusterIP: whichever endpoint is picked, the client is refused.
    for (let i = 0; i < 3; i++) {
      const r = await curl('default/client', echoVip);
      t.ok(
        CLOSED_OR_RESET.includes(r.code) && r.ms < FAST_MS,
        `ALLOW trusted: client → echo ClusterIP refused (curl ${r.code}, ${r.ms} ms)`,
      );
    }
    await reaches(
      'default/trusted',
      echoV2,
      'echo-v2',
      'node-2',
      {
        component: 'agent.inbound',
        'src.identity': spiffe('default', 'trusted'),
        verdict: 'allowed',
        policy: 'default/allow-trusted',
        rule: 0,
      },
      'ALLOW trusted: trusted → echo-v2',
    );
    const viaVip = await curl('default/trusted', echoVip);
    t.ok(
      viaVip.code === 0 && /"pod": "echo-v[12]"/.test(viaVip.stdout),
      'ALLOW trusted: trusted → echo ClusterIP',
    );
    // A plaintext peer has no principal: the ALLOW cannot match it either.
    await refused(
      'outside/stranger',
      echoV2,
      'node-2',
      {
        component: 'agent.inbound-plaintext',
        'src.workload': 'stranger',
        verdict: 'denied',
        reason: 'allow policies exist, but none allowed',
      },
      'ALLOW trusted: outside/stranger → echo-v2',
    );
    // Without the policy the client gets through again.
    remove('allow-trusted');
    await settled('default/client', echoV2, true, 'policy deleted: client → echo-v2 answered again');

    // --- 2. DENY wins over ALLOW ---------------------------------------------------------------------
    // Both clients are allowed; trusted is also denied on port 8080 (the container port: the Service's
    // port 80 is not what policy sees).
    await apply(
      'deny-wins',
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-clients, namespace: default }
spec:
  selector: { matchLabels: { app: echo } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: [${principal('default', 'client')}, ${principal('default', 'trusted')}] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-trusted-8080, namespace: default }
spec:
  selector: { matchLabels: { app: echo } }
  action: DENY
  rules:
    - from: [{ source: { principals: [${principal('default', 'trusted')}] } }]
      to: [{ operation: { ports: ['8080'] } }]
`,
    );
    await settled('default/trusted', echoV2, false, 'DENY trusted:8080: in force');
    await refused(
      'default/trusted',
      echoV2,
      'node-2',
      {
        component: 'agent.inbound',
        'src.identity': spiffe('default', 'trusted'),
        verdict: 'denied',
        policy: 'default/deny-trusted-8080',
        rule: 0,
        reason: 'explicitly denied by default/deny-trusted-8080',
      },
      'DENY over ALLOW: trusted → echo-v2',
    );
    await refused(
      'default/trusted',
      echoV1,
      'node-1',
      {
        component: 'agent.inbound',
        'src.identity': spiffe('default', 'trusted'),
        verdict: 'denied',
        policy: 'default/deny-trusted-8080',
      },
      'DENY over ALLOW: trusted → echo-v1 (same node)',
    );
    for (let i = 0; i < 2; i++) {
      const r = await curl('default/trusted', echoVip);
      t.ok(
        CLOSED_OR_RESET.includes(r.code) && r.ms < FAST_MS,
        `DENY over ALLOW: trusted → echo ClusterIP :80 refused by the port-8080 rule (curl ${r.code})`,
      );
    }
    await reaches(
      'default/client',
      echoV2,
      'echo-v2',
      'node-2',
      {
        component: 'agent.inbound',
        'src.identity': spiffe('default', 'client'),
        verdict: 'allowed',
        policy: 'default/allow-clients',
      },
      'DENY over ALLOW: the client, allowed by the same ALLOW, is not denied',
    );
    remove('deny-wins');
    await settled('default/trusted', echoV2, true, 'policies deleted: trusted → echo-v2 answered again');

    // --- 3. PeerAuthentication STRICT: plaintext captured at echo's side is refused ------------------
    await settled('outside/stranger', echoV2, true, 'PERMISSIVE again: outside/stranger → echo-v2');
    // A plaintext connection open when STRICT arrives is closed by the change, not left to finish.
    const slow = curl('outside/stranger', echoV2, { headers: ['x-echo-delay-ms: 8000'], maxTime: 15 });
    let open = false;
    for (let deadline = Date.now() + 5000; !open && Date.now() < deadline; await sleep(100)) {
      const dump = await run('ip', [
        'netns',
        'exec',
        node2Netns,
        'curl',
        '-s',
        '--max-time',
        '2',
        'http://127.0.0.1:15000/config_dump',
      ]);
      open = liveInbound(dump.stdout).includes(pod('outside', 'stranger')!.ip);
    }
    t.ok(open, "the stranger's slow request is a live connection of node-2's plaintext inbound");
    const sinceStrict = mark('node-2');
    const strictAt = Date.now();
    await apply(
      'strict',
      `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: default }
spec:
  mtls: { mode: STRICT }
`,
    );
    const cut = await slow;
    t.ok(
      CLOSED_OR_RESET.includes(cut.code),
      `STRICT: the open plaintext connection is cut (curl ${cut.code})`,
    );
    t.ok(
      Date.now() - strictAt < 6000,
      `STRICT: cut ${Date.now() - strictAt} ms after the apply, before echo answered`,
    );
    t.ok(
      await logged(dir, 'node-2', sinceStrict, {
        component: 'agent.inbound-plaintext',
        'src.workload': 'stranger',
        verdict: 'denied',
        policy: STATIC_STRICT,
        error: /closed by a policy change/,
      }),
      'STRICT: the cut connection is logged with the STRICT policy',
    );
    await refused(
      'outside/stranger',
      echoV2,
      'node-2',
      {
        component: 'agent.inbound-plaintext',
        'src.workload': 'stranger',
        'src.identity': undefined,
        'dst.addr': echoV2,
        verdict: 'denied',
        policy: STATIC_STRICT,
        response_flags: 'DENY',
      },
      'STRICT: outside/stranger → echo-v2 (other node)',
    );
    await refused(
      'outside/stranger',
      echoV1,
      'node-1',
      {
        component: 'agent.inbound-plaintext',
        'src.workload': 'stranger',
        verdict: 'denied',
        policy: STATIC_STRICT,
      },
      'STRICT: outside/stranger → echo-v1 (same node)',
    );
    await refused(
      'default/optout',
      echoV2,
      'node-2',
      {
        component: 'agent.inbound-plaintext',
        'src.workload': 'optout',
        'src.identity': undefined,
        verdict: 'denied',
        policy: STATIC_STRICT,
      },
      "STRICT: default/optout (opted out, echo-v2's node) → echo-v2",
    );
    await reaches(
      'default/client',
      echoV2,
      'echo-v2',
      'node-2',
      {
        component: 'agent.inbound',
        'src.identity': spiffe('default', 'client'),
        verdict: 'allowed',
      },
      'STRICT: the meshed client still reaches echo-v2',
    );
    await reaches(
      'default/client',
      echoV1,
      'echo-v1',
      'node-1',
      {
        component: 'agent.inbound',
        'src.identity': spiffe('default', 'client'),
        verdict: 'allowed',
      },
      'STRICT: the meshed client still reaches echo-v1 (same node)',
    );
    remove('strict');
    await settled(
      'outside/stranger',
      echoV2,
      true,
      'STRICT removed: outside/stranger → echo-v2 answered again',
    );

    const final = readState(dir);
    t.equal((await weft(['lab', 'down', ...env])).code, 0, 'lab down');
    t.same(await leftovers(final), [], 'lab down leaves nothing behind');
  },
);
