// Transparent capture on the real kernel (capture.md approach C): a node netns with two pods, the tc
// program on both host-side veths, sk_lookup on the node netns, and a stand-in agent (fixtures/
// node-agent.ts) that proxies through the TypeScript API. Root only; skips with the reason elsewhere
// and fails under CI.
import t from 'tap';
import { PinnedMaps } from '../../ebpf-redirect/pinned-maps.js';
import type { CaptureStats } from '../../ebpf-redirect/maps.js';
import {
  CaptureLab,
  captureLabUnavailable,
  POD_A_IP,
  POD_B_IP,
  skipOrFail,
  type Json,
  type JsonLinesProcess,
} from './capture-lab.js';

const OUTBOUND = { outbound: true, inbound: false, drain: false };
const OUTBOUND_DRAINING = { outbound: true, inbound: false, drain: true };
const INBOUND = { outbound: false, inbound: true, drain: false };
/** A captured or direct connect must finish well inside this (a TIME_WAIT collision took seconds). */
const PROMPT_MS = 1000;

const skip = skipOrFail(t, await captureLabUnavailable());

interface Reply {
  id: number;
  ok: boolean;
  localPort: number;
  code?: string;
  ms: number;
  reply: { peer: string; local?: string; line?: string; hbone?: boolean };
}

t.test('capture: tc marks + sk_lookup assigns the transparent listener', { skip }, async (t) => {
  const lab = await CaptureLab.create();
  t.teardown(() => lab.destroy());
  const podB = lab.spawn(lab.podB, 'pod', ['--serve', '8080']);
  const podA = lab.spawn(lab.podA, 'pod', []);
  await podB.waitFor((l) => l.ev === 'listening', 'pod-b to listen', 15_000);
  await podA.waitFor((l) => l.ev === 'ready', 'pod-a to start', 15_000);
  let { agent, ready } = await lab.startAgent();
  const maps = new PinnedMaps(lab.pinDir);
  const before = maps.readStats();

  const connect = async (port: number, extra: Json = {}): Promise<Reply> =>
    (await podA.request({
      op: 'connect',
      host: POD_B_IP,
      port,
      line: 'hello',
      ...extra,
    })) as unknown as Reply;
  const fromPort = (port: number) => (l: Json) => l.ev === 'accept' && l.remote === `${POD_A_IP}:${port}`;
  /** Accepts seen so far: for "never captured", where pod-b's view (its peer port) is the real proof. */
  const acceptedFrom = (a: JsonLinesProcess, port: number) => a.count(fromPort(port));
  /** Waits for the n-th accept: the agent's line may arrive after pod-a's answer. */
  const awaitCaptured = (a: JsonLinesProcess, port: number, n = 1) =>
    a.waitForCount(fromPort(port), n, `accept #${n} from pod-a:${port}`).catch(() => a.count(fromPort(port)));
  const podBAccepts = () => podB.count((l) => l.ev === 'accept');

  t.test('fresh load pins every map and attaches once', async (t) => {
    const load = ready.load as { createdMaps: string[]; reusedMaps: string[] };
    t.same([...load.createdMaps].sort(), ['config', 'enrolled', 'listeners', 'probe', 'stats']);
    t.same(load.reusedMaps, []);
    t.equal((ready.skLookup as { reused: boolean }).reused, false);
    t.ok(maps.listenerCookie('outbound'), 'the outbound listener is in the SOCKMAP');
    t.ok(maps.listenerCookie('hbone'), 'the HBONE listener is in the SOCKMAP');
  });

  t.test('a. not enrolled: pod-a → pod-b goes direct, the agent sees nothing', async (t) => {
    const r = await connect(8080);
    t.ok(r.ok, `connected (${r.code ?? 'ok'})`);
    t.equal(r.reply.peer, `${POD_A_IP}:${r.localPort}`, 'pod-b sees pod-a itself, same port');
    t.equal(acceptedFrom(agent, r.localPort), 0, 'no listener accepted it');
  });

  t.test(
    'b. enrolled outbound: :15001 gets the original destination; onward keeps pod-a as source',
    async (t) => {
      maps.enrol(POD_A_IP, OUTBOUND);
      const r = await connect(8080);
      t.ok(r.ok, `connected (${r.code ?? 'ok'})`);
      const accept = await agent.waitFor(
        (l) => l.ev === 'accept' && l.remote === `${POD_A_IP}:${r.localPort}`,
        'the captured accept',
      );
      t.equal(accept.listener, 'outbound');
      t.equal(accept.local, `${POD_B_IP}:8080`, 'localAddress:localPort is the original destination');
      const onward = await agent.waitFor(
        (l) => l.ev === 'onward' && l.local === r.reply.peer,
        'the onward dial',
      );
      t.match(r.reply.peer, new RegExp(`^${POD_A_IP.replace(/\./g, '\\.')}:\\d+$`), "pod-b sees pod-a's IP");
      t.equal(onward.local, r.reply.peer, "…from the agent's marked, transparently bound onward socket");
      t.ok(r.ms < PROMPT_MS, `prompt (${r.ms} ms)`);
    },
  );

  t.test(
    'c. enrolment keeps direct connections; drain keeps captured ones and sends new ones direct',
    async (t) => {
      maps.unenrol(POD_A_IP);
      const direct = await connect(8080, { keep: true });
      t.ok(direct.ok, 'direct keep-alive connection open');
      maps.enrol(POD_A_IP, OUTBOUND);
      const stillDirect = (await podA.request({
        op: 'send',
        conn: direct.id,
        line: 'again',
      })) as unknown as Reply;
      t.ok(stillDirect.ok, `the direct connection survives enrolment (${stillDirect.code ?? 'ok'})`);
      t.equal(stillDirect.reply?.peer, `${POD_A_IP}:${direct.localPort}`, '…and is still direct');
      t.equal(acceptedFrom(agent, direct.localPort), 0, 'the agent never saw it');

      const captured = await connect(8080, { keep: true });
      t.ok(captured.ok, 'a new connection while enrolled');
      t.equal(await awaitCaptured(agent, captured.localPort), 1, '…is captured');

      maps.enrol(POD_A_IP, OUTBOUND_DRAINING);
      const onward = await lab.exec(lab.node, 'ss', '-Htne', 'state', 'established', '( dport = :8080 )');
      t.match(onward, 'fwmark:0x5af', "the agent's onward socket carries the onward mark");
      const survived = (await podA.request({
        op: 'send',
        conn: captured.id,
        line: 'drain',
      })) as unknown as Reply;
      t.ok(survived.ok, `the captured connection survives drain (${survived.code ?? 'ok'})`);
      const fresh = await connect(8080);
      t.ok(fresh.ok, 'a new connection while draining');
      t.equal(fresh.reply.peer, `${POD_A_IP}:${fresh.localPort}`, '…goes direct');
      t.equal(acceptedFrom(agent, fresh.localPort), 0, '…and the agent never saw it');
      await podA.request({ op: 'close', conn: direct.id });
      await podA.request({ op: 'close', conn: captured.id });
    },
  );

  t.test(
    'd. reusing a client port whose proxied connection left a node TIME_WAIT connects promptly',
    async (t) => {
      maps.enrol(POD_A_IP, OUTBOUND);
      const port = 40000 + Math.floor(Math.random() * 20000);
      const first = await connect(8080, { localPort: port, line: 'bye', peerCloses: true });
      t.ok(first.ok, `first connection from :${port}`);
      t.equal(await awaitCaptured(agent, port), 1, 'captured');
      // pod-b closes first, so the agent closes the client leg first and the node keeps its TIME_WAIT.
      let tw = '';
      for (let i = 0; i < 40 && !tw.includes(`${POD_A_IP}:${port}`); i++) {
        tw = await lab.exec(lab.node, 'ss', '-Htan', 'state', 'time-wait', `( sport = :8080 )`);
        if (!tw.includes(`${POD_A_IP}:${port}`)) await new Promise((r) => setTimeout(r, 50));
      }
      t.match(tw, `${POD_B_IP}:8080`, 'the node holds a TIME_WAIT for the 4-tuple');
      t.match(tw, `${POD_A_IP}:${port}`);
      const again = await connect(8080, { localPort: port, timeoutMs: 3000 });
      t.ok(again.ok, `reconnected from the same port (${again.code ?? 'ok'})`);
      t.ok(again.ms < PROMPT_MS, `promptly (${again.ms} ms)`);
      t.equal(await awaitCaptured(agent, port, 2), 2, 'and captured again');
    },
  );

  t.test('e. enrolled inbound: :8080 lands on :15006, :15008 on the HBONE listener', async (t) => {
    maps.unenrol(POD_A_IP);
    const refused = await connect(15008);
    t.equal(refused.code, 'ECONNREFUSED', 'before enrolment nothing serves pod-b:15008');
    maps.enrol(POD_B_IP, INBOUND);
    const plain = await connect(8080);
    t.ok(plain.ok, 'connected to pod-b:8080');
    const accept = await agent.waitFor(
      (l) => l.ev === 'accept' && l.remote === `${POD_A_IP}:${plain.localPort}`,
      'the inbound accept',
    );
    t.equal(accept.listener, 'inbound');
    t.equal(accept.local, `${POD_B_IP}:8080`);
    t.match(plain.reply.peer, `${POD_A_IP}:`, 'pod-b still sees pod-a (transparent source)');
    const hbone = await connect(15008);
    t.ok(hbone.ok, 'connected to pod-b:15008');
    t.equal(hbone.reply.hbone, true, 'answered by the HBONE listener');
    t.equal(hbone.reply.local, `${POD_B_IP}:15008`);
    maps.unenrol(POD_B_IP);
  });

  t.test(
    'f. fail closed: with the agent gone an enrolled pod is refused fast, never let through',
    async (t) => {
      maps.enrol(POD_A_IP, OUTBOUND);
      await agent.stop('SIGKILL');
      const podBBefore = podBAccepts();
      t.equal(maps.listenerCookie('outbound'), undefined, 'the SOCKMAP slot went with the process');
      const refused = await connect(8080, { timeoutMs: 3000 });
      t.equal(refused.code, 'ECONNREFUSED', 'refused');
      t.ok(refused.ms < PROMPT_MS, `fast (${refused.ms} ms), not a hang`);

      maps.writeConfig({ failDrop: true });
      const dropped = await connect(8080, { timeoutMs: 1200 });
      t.equal(dropped.code, 'TIMEOUT', 'with config failDrop the SYN is dropped silently instead');
      maps.writeConfig({ failDrop: false });
      t.equal(maps.readConfig().failDrop, false);

      maps.unenrol(POD_A_IP);
      maps.enrol(POD_B_IP, INBOUND);
      const inbound = await connect(8080, { timeoutMs: 3000 });
      t.equal(
        inbound.code,
        'ECONNREFUSED',
        'an inbound-enrolled pod is not reachable around the agent either',
      );
      t.equal(podBAccepts(), podBBefore, 'pod-b received no connection while the agent was down');

      ({ agent, ready } = await lab.startAgent());
      const load = ready.load as { reusedMaps: string[]; createdMaps: string[] };
      t.same(load.createdMaps, [], 'the restarted agent re-opens every pinned map');
      t.equal((ready.skLookup as { reused: boolean }).reused, true, '…and the pinned sk_lookup link');
      t.same(maps.enrolment(POD_B_IP), INBOUND, 'enrolment survived the restart');
      const back = await connect(8080);
      t.ok(back.ok, 'connections work again');
      t.equal(await awaitCaptured(agent, back.localPort), 1, '…through the agent');
      maps.unenrol(POD_B_IP);
    },
  );

  t.test('g. counters move', async (t) => {
    const after = maps.readStats();
    const delta = (k: keyof CaptureStats) => after[k] - before[k];
    t.ok(delta('seen') > 20, `seen +${delta('seen')}`);
    // b: 1, c: 1, d: 2 outbound; e: 1 and the restarted agent in f: 1 inbound; e: 1 HBONE.
    t.equal(delta('capturedOut'), 4, 'capturedOut +4');
    t.equal(delta('capturedIn'), 2, 'capturedIn +2');
    t.equal(delta('capturedHbone'), 1, 'capturedHbone +1');
    t.ok(delta('established') > 10, `established +${delta('established')}`);
    t.ok(delta('passedNonSyn') >= 2, `passedNonSyn +${delta('passedNonSyn')}`);
    t.ok(delta('passedDraining') >= 1, `passedDraining +${delta('passedDraining')}`);
    // refused outbound + refused inbound, and the dropped SYN (plus any retransmit within the 1.2 s wait)
    t.ok(delta('noListener') >= 3, `noListener +${delta('noListener')}`);
    t.equal(delta('resetSent'), 2, 'resetSent +2');
    t.equal(delta('lookupAssigned'), 7, 'sk_lookup assigned exactly the 7 captured SYNs');
    t.equal(delta('lookupNoListener'), 0);
    t.equal(delta('lookupFailed'), 0);
  });
});
