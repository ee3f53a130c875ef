// Opaque TCP through the waypoint (a Service port declared TCP): the tunnel is accepted at once, then the
// waypoint connects to an endpoint. When that fails, the tunnel must end as a failed TCP connection,
// RST_STREAM(CONNECT_ERROR) (RFC 9113 §8.5), never as RST_STREAM(NO_ERROR): Node's client side ends its
// readable side on that as on END_STREAM, and the source agent would hand the application a FIN, as if
// the server had answered and closed. When it works, bytes go both ways and the server's FIN arrives as
// END_STREAM. The whole waypoint runs in this process (test/helpers/in-process-waypoint.ts).
import { once } from 'node:events';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { waypointFixture } from '../../helpers/in-process-waypoint.js';

/** A loopback port nothing listens on (just released). */
async function closedPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  s.close();
  await once(s, 'close');
  return port;
}

t.test('a TCP upstream that refuses: the tunnel ends with RST_STREAM(CONNECT_ERROR)', async (t) => {
  const fixture = await waypointFixture([{ name: 'tcp', port: 9000, targetPort: await closedPort() }]);
  t.teardown(() => fixture.close());
  const waypoint = await fixture.start();
  const stream = await fixture.connect(waypoint.hboneAddress.port, 9000);
  stream.on('error', () => undefined);
  stream.resume();
  stream.write('hello\n');
  // Not events.once: the reset is also an 'error', which would reject it.
  await new Promise((resolve) => stream.once('close', resolve));
  t.equal(
    stream.rstCode,
    http2.constants.NGHTTP2_CONNECT_ERROR,
    `the stream was reset with CONNECT_ERROR (code ${stream.rstCode})`,
  );
});

t.test('a TCP upstream that answers: bytes both ways, its FIN as END_STREAM', async (t) => {
  const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
    s.once('data', (chunk: Buffer) => s.end(`echo ${chunk.toString()}`));
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const fixture = await waypointFixture([
    { name: 'tcp', port: 9000, targetPort: (upstream.address() as AddressInfo).port },
  ]);
  t.teardown(async () => {
    upstream.close();
    await fixture.close();
  });
  const waypoint = await fixture.start();
  const stream = await fixture.connect(waypoint.hboneAddress.port, 9000);
  let received = '';
  stream.on('data', (c: Buffer) => (received += c.toString()));
  stream.write('hello\n');
  await once(stream, 'end');
  t.equal(received, 'echo hello\n', 'the answer, then the end');
  stream.end();
  await once(stream, 'close');
  t.equal(stream.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'a clean end');
});
