// An agent's live memory after a full garbage collection, through the V8 inspector: RSS of a process
// that allocates per connection rises and falls by tens of MiB between collections, far more than the
// few hundred KiB that readers are allowed to cost, so RSS alone cannot show that bound. Collecting first
// and then reading `process.memoryUsage()` gives the memory the process actually holds on to.
//
// The agent is asked to open its inspector with SIGUSR1 (Node's own switch; it listens on
// 127.0.0.1:9229 of the agent's network namespace, so `inspectLiveMemory` runs inside that namespace:
// `liveMemoryInNetns` starts live-memory-main.js there). Only the bench's own lab's agents are signalled.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'undici';
import { childJson } from '../path-compare.js';

export const INSPECTOR_PORT = 9229;
const TIMEOUT_MS = 10_000;

/** `process.memoryUsage()` of the inspected process after a full GC, in bytes. */
export interface LiveMemory {
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  /** Memory of Buffers and other objects outside the V8 heap (includes arrayBuffers). */
  readonly external: number;
  readonly arrayBuffers: number;
}

/** live-memory-main beside this module (both .js in dist/, both .ts when run from source). */
const MAIN = fileURLToPath(new URL(`./live-memory-main${import.meta.url.slice(-3)}`, import.meta.url));

/** The memory of the process whose inspector listens in network namespace `netns`, through live-memory-main. */
export async function liveMemoryInNetns(netns: string, signal?: AbortSignal): Promise<LiveMemory> {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, MAIN], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(signal && { signal }),
  });
  return (await childJson(child, `live memory in ${netns}`)) as LiveMemory;
}

/** Asks process `pid` to open its inspector (it keeps it open until it exits). */
export function openInspector(pid: number): void {
  process.kill(pid, 'SIGUSR1');
}

interface CdpReply {
  readonly id?: number;
  readonly result?: { readonly result?: { readonly value?: unknown } };
  readonly error?: { readonly message: string };
}

/** Forces a full GC in the process whose inspector listens on 127.0.0.1:`port`, then reads its memory. */
export async function inspectLiveMemory(port: number = INSPECTOR_PORT): Promise<LiveMemory> {
  const signal = AbortSignal.timeout(TIMEOUT_MS);
  const url = (await debuggerTargets(port, signal))[0]?.webSocketDebuggerUrl;
  if (url === undefined) throw new Error(`no inspector target on 127.0.0.1:${port}`);
  const ws = new WebSocket(url);
  const pending = new Map<number, (reply: CdpReply) => void>();
  let nextId = 1;
  const call = (method: string, params: object = {}): Promise<CdpReply> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, (reply) =>
        reply.error ? reject(new Error(`${method}: ${reply.error.message}`)) : resolve(reply),
      );
      ws.send(JSON.stringify({ id, method, params }));
    });
  try {
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error(`cannot connect to the inspector at ${url}`)));
      signal.addEventListener('abort', () => reject(new Error(`the inspector at ${url} did not answer`)));
    });
    ws.addEventListener('message', (ev) => {
      const reply = JSON.parse(String(ev.data)) as CdpReply;
      if (reply.id !== undefined) pending.get(reply.id)?.(reply);
    });
    const timeout = new Promise<never>((_, reject) =>
      signal.addEventListener('abort', () => reject(new Error('the inspector did not answer in time'))),
    );
    // Raced below; once an answer has won, its later rejection must not be unhandled.
    timeout.catch(() => undefined);
    await Promise.race([call('HeapProfiler.collectGarbage'), timeout]);
    const reply = await Promise.race([
      call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true }),
      timeout,
    ]);
    const value = reply.result?.result?.value;
    if (typeof value !== 'string') throw new Error('process.memoryUsage() gave no value');
    return JSON.parse(value) as LiveMemory;
  } finally {
    // Wait for the close handshake: a socket left closing keeps this process alive for a second more.
    const closed = new Promise((resolve) => ws.addEventListener('close', resolve));
    ws.close();
    await Promise.race([closed, timeoutAfter(1000)]);
  }
}

function timeoutAfter(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** The inspector's targets (`/json/list`), on a connection that is closed after it. */
function debuggerTargets(port: number, signal: AbortSignal): Promise<{ webSocketDebuggerUrl?: string }[]> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/json/list', agent: false, signal }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as { webSocketDebuggerUrl?: string }[]);
        } catch (err) {
          reject(new Error(`the inspector's /json/list is not JSON: ${(err as Error).message}`));
        }
      });
    });
    req.on('error', reject);
  });
}
