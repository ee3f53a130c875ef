// Asking an HTTP/2 peer to move on without failing anything it already sent: the two-step graceful
// shutdown of RFC 9113 §6.8. Used on the waypoint's HBONE sessions and on the HTTP/2 sessions inside its
// tunnels when it drains.
import { constants as h2c, type Http2Session } from 'node:http2';

/** The highest HTTP/2 stream id: a GOAWAY naming it refuses nothing already sent. */
export const MAX_STREAM_ID = 2 ** 31 - 1;
/**
 * Between the graceful GOAWAY and the final one: far more than a round trip, so every stream the peer
 * sent before it saw the first has arrived.
 */
export const FINAL_GOAWAY_MS = 1000;

/**
 * GOAWAY naming MAX_STREAM_ID: the peer opens no new stream here (Node's client closes its side and
 * opens a new connection for the next request), and no stream it already sent is refused. FINAL_GOAWAY_MS
 * later, the final GOAWAY with the last stream processed; the session then closes as soon as its streams
 * have ended. Idempotent enough: a session already closing is left alone.
 */
export function askToMoveOn(session: Http2Session): void {
  if (session.closed || session.destroyed) return;
  try {
    session.goaway(h2c.NGHTTP2_NO_ERROR, MAX_STREAM_ID);
  } catch {
    return; // already going away
  }
  setTimeout(closeSession, FINAL_GOAWAY_MS, session).unref();
}

function closeSession(session: Http2Session): void {
  if (!session.closed && !session.destroyed) session.close();
}
