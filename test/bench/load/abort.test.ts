// A run stopped early (an AbortSignal: Ctrl-C in the CLI) reports what it measured: the time it ran, the
// rate over that time, nothing lost; the CLI prints the result and exits 0 on SIGINT.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { tcpProtocol } from '../../../bench/load/protocols/tcp.js';
import { runLoad } from '../../../bench/load/run.js';
import { missingPython, skipReason } from '../../helpers/exec.js';
import { at, CLI, LOCAL, PythonPeer, zeroErrors } from './peers.js';

t.setTimeout(30_000);

const skip = skipReason(t, await missingPython(['asyncio']));

t.test('stopped early, a run reports the time it ran and the rate over it', { skip }, async (t) => {
  const peer = await PythonPeer.start('tcp-echo', ['--payload', '32']);
  t.teardown(() => peer.close());
  for (const rate of [100, undefined]) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 700);
    const r = await runLoad({
      protocol: tcpProtocol({ target: at(peer.port), payloadBytes: 32 }),
      connections: 2,
      durationMs: 10_000,
      warmupMs: 200,
      rate,
      signal: abort.signal,
    });
    clearTimeout(timer);
    const mode = rate === undefined ? 'closed loop' : 'open loop';
    t.same(r.errors, zeroErrors(), `${mode}: no errors`);
    t.ok(r.requests > 0, `${mode}: ${r.requests} requests`);
    // Stopped ~0.5 s into a 10 s window: `seconds` is the time measured, not the time planned ...
    t.ok(r.seconds > 0 && r.seconds < 5, `${mode}: ${r.seconds} s measured`);
    // ... so the achieved rate is the requests over it (open loop: the schedule's rate).
    t.equal(r.achievedRps, Math.round(r.requests / r.seconds), `${mode}: achievedRps = requests / seconds`);
    if (rate !== undefined)
      t.ok(Math.abs(r.achievedRps - rate) <= rate * 0.1, `open loop: ${r.achievedRps} rps ≈ ${rate}`);
  }
});

t.test(
  'the CLI prints its result on SIGINT',
  { skip: skipReason(t, existsSync(CLI) ? undefined : 'no build') || skip },
  async (t) => {
    const peer = await PythonPeer.start('tcp-echo', ['--payload', '64']);
    t.teardown(() => peer.close());
    const child = spawn(
      process.execPath,
      [
        CLI,
        'bench',
        'tcp',
        '--json',
        '--progress',
        '--target',
        `${LOCAL}:${peer.port}`,
        '--payload',
        '64',
        '--rate',
        '100',
        '--duration',
        '30s',
        '--warmup',
        '0s',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
    // The first progress line (after 1 s) says it is running: then Ctrl-C.
    await once(createInterface({ input: child.stderr }), 'line');
    child.kill('SIGINT');
    const [code] = await exited;
    t.equal(code, 0, 'exit 0');
    const out = JSON.parse(stdout) as {
      requests: number;
      seconds: number;
      achievedRps: number;
      errorCount: number;
    };
    t.equal(out.errorCount, 0);
    t.ok(out.requests >= 90, `${out.requests} requests before the interrupt`);
    t.ok(out.seconds < 30, `${out.seconds} s: the time it ran, not the 30 s planned`);
    t.ok(Math.abs(out.achievedRps - 100) <= 10, `${out.achievedRps} rps ≈ 100`);
  },
);
