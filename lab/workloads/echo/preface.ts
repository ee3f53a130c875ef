// Telling HTTP/2 with prior knowledge (h2c) from HTTP/1.1 on one port: an HTTP/2 client opens with a
// fixed 24-byte preface (RFC 9113 section 3.4), which no HTTP/1.1 request line starts with. The bytes
// read to decide are put back, so whichever server gets the socket sees it from its first byte.
import type { Socket } from 'node:net';

export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export type Sniffed = 'h2' | 'http1' | 'gone';

/**
 * Reads until the first bytes match the whole preface ('h2') or differ from it ('http1'); usually the
 * first byte decides. 'gone' means the socket ended, failed or sent nothing for `timeoutMs`; it is then
 * destroyed. Nothing is consumed: what was read is unshifted before the promise resolves.
 */
export function sniffPreface(socket: Socket, timeoutMs: number): Promise<Sniffed> {
  return new Promise((resolve) => {
    const seen: Buffer[] = [];
    let length = 0;
    const finish = (result: Sniffed): void => {
      socket.off('readable', onReadable);
      socket.off('end', onGone);
      socket.off('close', onGone);
      clearTimeout(timer);
      if (result === 'gone') socket.destroy();
      else socket.unshift(Buffer.concat(seen, length));
      resolve(result);
    };
    const onReadable = (): void => {
      for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null;) {
        seen.push(chunk);
        length += chunk.length;
      }
      const n = Math.min(length, HTTP2_PREFACE.length);
      const head = Buffer.concat(seen, length).subarray(0, n);
      if (!head.equals(HTTP2_PREFACE.subarray(0, n))) finish('http1');
      else if (n === HTTP2_PREFACE.length) finish('h2');
    };
    const onGone = (): void => finish('gone');
    const timer = setTimeout(onGone, timeoutMs);
    socket.on('readable', onReadable);
    socket.once('end', onGone);
    socket.once('close', onGone);
  });
}
