// Server-side HBONE keepalive, shared by the node agent and the waypoint.
import type { Http2Session } from 'node:http2';
import { PING_INTERVAL_MS, PING_TIMEOUT_MS } from './settings.js';

/**
 * Server-side keepalive, as ztunnel's serve_connection: a PING every PING_INTERVAL_MS; `onDead` when one
 * is still unanswered after PING_TIMEOUT_MS. Besides dead peers, this is what ends a session nghttp2 has
 * terminated (its GOAWAY for a protocol error, or for rapid resets): Node then stops reading the socket
 * without closing it or telling JS, so not even the peer's FIN is seen, and the session, its streams and
 * their upstream connections would otherwise stay forever.
 */
export function keepAlive(session: Http2Session, onDead: () => void): void {
  let deadline: NodeJS.Timeout | undefined;
  const onPong = (err: Error | null) => {
    if (err) return; // cancelled: the session is closing
    clearTimeout(deadline);
    deadline = undefined;
  };
  const timer = setInterval(() => {
    // ping() throws once the session is destroyed, which precedes its 'close'.
    if (deadline || session.destroyed) return;
    if (session.ping(onPong)) deadline = setTimeout(onDead, PING_TIMEOUT_MS).unref();
  }, PING_INTERVAL_MS).unref();
  session.once('close', () => {
    clearInterval(timer);
    clearTimeout(deadline);
  });
}
