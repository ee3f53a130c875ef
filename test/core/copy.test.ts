// core/copy.ts pump() between an HTTP/2 stream and a TCP socket, both real, on loopback: an HTTP/2
// client opens a stream to a server that pumps it into a TCP connection to an "application" server.
// A stream that ends cleanly (END_STREAM) reaches the application as FIN, after every byte; one reset
// (RST_STREAM) must reach it as a TCP reset, never as a FIN that would make a cut stream look complete.
// The resetting peer is Python's h2 (Node's own stream.close() sends END_STREAM before its RST_STREAM,
// which is a clean end followed by a reset; peers such as ztunnel send the RST_STREAM alone).
// And an application that resets its socket resets the stream.
import { once } from 'node:events';
import http2, { type ClientHttp2Stream } from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { pump } from '../../core/copy.js';
import { SYSTEM_PYTHON, missingPython, run, skipReason } from '../helpers/exec.js';

/** Python h2 over plain TCP: a POST stream, `bytes` of DATA, a pause, then RST_STREAM(`code`) alone. */
const RESETTING_CLIENT = `
import socket, sys, time, h2.connection, h2.config
port, nbytes, code = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
c.send_headers(1, [(":method", "POST"), (":path", "/"), (":scheme", "http"), (":authority", "app")])
c.send_data(1, b"x" * nbytes)
s.sendall(c.data_to_send())
time.sleep(0.1)
c.reset_stream(1, code)
s.sendall(c.data_to_send())
time.sleep(0.2)
`;

interface AppEnding {
  bytes: number;
  how: 'fin' | 'reset' | 'other';
  detail: string;
}

async function harness(t: { teardown(fn: () => void): void }): Promise<{
  port: number;
  open(): Promise<ClientHttp2Stream>;
  /** How the application's socket for the next stream ended. */
  nextApp(): Promise<{ ending: Promise<AppEnding>; socket: net.Socket }>;
}> {
  const appSockets: net.Socket[] = [];
  const waiting: Array<(s: net.Socket) => void> = [];
  const app = net.createServer({ allowHalfOpen: true }, (s) => {
    const w = waiting.shift();
    if (w) w(s);
    else appSockets.push(s);
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  const appPort = (app.address() as AddressInfo).port;

  const server = http2.createServer();
  server.on('stream', (stream) => {
    const socket = net.connect({ port: appPort, host: '127.0.0.1', allowHalfOpen: true });
    socket.once('connect', () => pump(stream, socket, () => undefined));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  t.teardown(() => {
    client.destroy();
    server.close();
    app.close();
  });
  return {
    port: (server.address() as AddressInfo).port,
    async open() {
      const stream = client.request({ ':method': 'POST', ':path': '/' });
      stream.on('error', () => undefined);
      return stream;
    },
    async nextApp() {
      const socket = appSockets.shift() ?? (await new Promise<net.Socket>((r) => waiting.push(r)));
      const ending = new Promise<AppEnding>((resolve) => {
        let bytes = 0;
        socket.on('data', (c: Buffer) => (bytes += c.length));
        socket.once('end', () => resolve({ bytes, how: 'fin', detail: '' }));
        socket.once('error', (err: NodeJS.ErrnoException) =>
          resolve({ bytes, how: err.code === 'ECONNRESET' ? 'reset' : 'other', detail: err.message }),
        );
        socket.once('close', () => resolve({ bytes, how: 'other', detail: 'closed without end or error' }));
      });
      return { ending, socket };
    },
  };
}

t.test('a stream ended cleanly reaches the application as FIN after all its bytes', async (t) => {
  const h = await harness(t);
  const stream = await h.open();
  const app = await h.nextApp();
  stream.write(Buffer.alloc(100_000, 1));
  stream.end(Buffer.alloc(1000, 2));
  const ending = await app.ending;
  t.same(ending, { bytes: 101_000, how: 'fin', detail: '' });
  app.socket.end('bye');
  stream.resume();
  await once(stream, 'close');
  t.equal(
    stream.rstCode,
    http2.constants.NGHTTP2_NO_ERROR,
    'and the application FIN ends the stream cleanly',
  );
});

const noH2 = await missingPython(['h2']);

t.test(
  'a stream reset mid-way reaches the application as a reset, not a FIN',
  { skip: skipReason(t, noH2) },
  async (t) => {
    const h = await harness(t);
    for (const code of [http2.constants.NGHTTP2_CANCEL, http2.constants.NGHTTP2_CONNECT_ERROR]) {
      const peer = run(SYSTEM_PYTHON, ['-c', RESETTING_CLIENT, String(h.port), '10000', String(code)]);
      const app = await h.nextApp();
      const ending = await app.ending;
      t.equal((await peer).stderr, '', 'the peer ran');
      t.equal(
        ending.how,
        'reset',
        `RST_STREAM code ${code}: the application's connection is reset (${ending.detail})`,
      );
      t.equal(ending.bytes, 10_000, 'after the bytes sent before it');
    }
  },
);

t.test('an application that resets its connection resets the stream', async (t) => {
  const h = await harness(t);
  const stream = await h.open();
  const app = await h.nextApp();
  stream.write('hello');
  await new Promise((r) => setTimeout(r, 50));
  app.socket.resetAndDestroy();
  stream.resume();
  await once(stream, 'close');
  t.not(stream.rstCode, http2.constants.NGHTTP2_NO_ERROR, `the stream was reset (code ${stream.rstCode})`);
  t.notOk(stream.readableEnded && stream.rstCode === 0, 'not ended as if complete');
});

for (const [how, end] of [
  ['RST_STREAM(CANCEL)', (s: http2.ServerHttp2Stream) => s.close(http2.constants.NGHTTP2_CANCEL)],
  // Node's destroy() without an error: RST_STREAM(NO_ERROR), which the client side ends like END_STREAM.
  ['RST_STREAM(NO_ERROR)', (s: http2.ServerHttp2Stream) => s.destroy()],
] as const)
  t.test(
    `a side already closed when the pump starts (${how}) resets the other, and the pump finishes`,
    async (t) => {
      // A tunnel answered 200 and reset in one read: its stream closes before the code awaiting the answer
      // pumps it (the agent's outbound after a waypoint's 200 and RST_STREAM). The application's connection
      // must be reset at once, not left open and unread.
      const server = http2.createServer();
      server.on('stream', (stream) => {
        stream.respond({ ':status': 200 });
        end(stream);
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      const app = net.createServer({ allowHalfOpen: true });
      app.listen(0, '127.0.0.1');
      await once(app, 'listening');
      t.teardown(() => {
        client.destroy();
        server.close();
        app.close();
      });
      const stream = client.request({ ':method': 'CONNECT', ':authority': 'app:1' });
      stream.on('error', () => undefined);
      await once(stream, 'close');
      t.ok(stream.destroyed, 'the stream is over before the pump starts');

      const accepted = once(app, 'connection') as Promise<[net.Socket]>;
      const appClient = net.connect({ port: (app.address() as AddressInfo).port, host: '127.0.0.1' });
      const ended = new Promise<string>((resolve) => {
        appClient.once('end', () => resolve('fin'));
        appClient.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });
      const [agentSide] = await accepted;
      const done = new Promise<Error | undefined>((resolve) => pump(stream, agentSide, resolve));
      appClient.write('a line the application sends\n');
      const timeout = (what: string): Promise<string> =>
        new Promise((resolve) => setTimeout(() => resolve(`no ${what} within 3 s`), 3000).unref());
      t.equal(await Promise.race([ended, timeout('ending')]), 'ECONNRESET', 'the application sees a reset');
      t.equal(
        await Promise.race([done.then(() => 'done'), timeout('done')]),
        'done',
        'the pump reports the connection over',
      );
    },
  );
