// SOCKS5 (RFC 1928) entry for outbound traffic, as ztunnel's 127.0.0.1:15080: no authentication,
// CONNECT to an IPv4 or IPv6 address only. The handshake is parsed from a small bounded buffer; after
// it the socket is handed to the outbound proxy and never parsed again.
import net from 'node:net';
import type { Logger } from '../core/log.js';
import { listenWhenFree } from '../core/http-endpoints.js';
import { survivingAcceptErrors } from './connection-budget.js';
import type { HostPort } from '../core/address.js';
import type { Destination, OutboundProxy } from './outbound.js';
import { tuneSocket } from '../core/tcp.js';

export const SOCKS5_PORT = 15080;
/** The longest handshake we accept: greeting (≤ 257) + IPv6 request (22), with room to spare. */
const MAX_HANDSHAKE_BYTES = 512;
/** A client that has not finished its handshake by then is dropped. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

const VERSION = 0x05;
const METHOD_NO_AUTH = 0x00;
const METHOD_NONE_ACCEPTABLE = 0xff;
const CMD_CONNECT = 0x01;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;

export const REPLY = {
  succeeded: 0x00,
  generalFailure: 0x01,
  hostUnreachable: 0x04,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

export type Socks5Parse =
  | { readonly kind: 'need-more' }
  | { readonly kind: 'greeting'; readonly consumed: number; readonly noAuth: boolean }
  | { readonly kind: 'connect'; readonly consumed: number; readonly dst: Destination }
  | { readonly kind: 'error'; readonly reply: number; readonly reason: string };

/** Parses the greeting (`VER NMETHODS METHODS…`). Pure. */
export function parseGreeting(buf: Buffer): Socks5Parse {
  if (buf.length < 2) return { kind: 'need-more' };
  if (buf[0] !== VERSION)
    return { kind: 'error', reply: REPLY.generalFailure, reason: `not SOCKS5 (version ${buf[0]})` };
  const n = buf[1]!;
  if (buf.length < 2 + n) return { kind: 'need-more' };
  const methods = buf.subarray(2, 2 + n);
  return { kind: 'greeting', consumed: 2 + n, noAuth: methods.includes(METHOD_NO_AUTH) };
}

/** Parses a request (`VER CMD RSV ATYP DST.ADDR DST.PORT`). Pure. */
export function parseRequest(buf: Buffer): Socks5Parse {
  if (buf.length < 4) return { kind: 'need-more' };
  if (buf[0] !== VERSION)
    return { kind: 'error', reply: REPLY.generalFailure, reason: `not SOCKS5 (version ${buf[0]})` };
  if (buf[1] !== CMD_CONNECT)
    return { kind: 'error', reply: REPLY.commandNotSupported, reason: `command ${buf[1]} is not CONNECT` };
  const atyp = buf[3];
  let addrLen: number;
  if (atyp === ATYP_IPV4) addrLen = 4;
  else if (atyp === ATYP_IPV6) addrLen = 16;
  else if (atyp === ATYP_DOMAIN)
    return {
      kind: 'error',
      reply: REPLY.addressTypeNotSupported,
      reason: 'domain names are not resolved; connect to an IP',
    };
  else return { kind: 'error', reply: REPLY.addressTypeNotSupported, reason: `address type ${atyp}` };
  const total = 4 + addrLen + 2;
  if (buf.length < total) return { kind: 'need-more' };
  const addr = buf.subarray(4, 4 + addrLen);
  const ip = atyp === ATYP_IPV4 ? Array.from(addr).join('.') : ipv6Text(addr);
  const port = buf.readUInt16BE(4 + addrLen);
  if (port === 0) return { kind: 'error', reply: REPLY.hostUnreachable, reason: 'port 0' };
  return { kind: 'connect', consumed: total, dst: { ip, port } };
}

function ipv6Text(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // Let the URL parser compress it to the canonical form Node uses for socket addresses.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

const NO_ACCEPTABLE_METHOD = Buffer.from([VERSION, METHOD_NONE_ACCEPTABLE]);

function reply(code: number): Buffer {
  // BND.ADDR/BND.PORT are not meaningful for a tunnelled connection: 0.0.0.0:0.
  return Buffer.from([VERSION, code, 0x00, ATYP_IPV4, 0, 0, 0, 0, 0, 0]);
}

class Socks5Handshake {
  #buf: Buffer = Buffer.alloc(0);
  #greeted = false;
  readonly #timer: NodeJS.Timeout;

  constructor(
    readonly socket: net.Socket,
    readonly outbound: OutboundProxy,
    readonly log: Logger,
  ) {
    this.onData = this.onData.bind(this);
    this.onReady = this.onReady.bind(this);
    this.#timer = setTimeout(
      () => this.fail(REPLY.generalFailure, 'handshake timed out'),
      HANDSHAKE_TIMEOUT_MS,
    ).unref();
    socket.on('data', this.onData);
    socket.on('error', () => clearTimeout(this.#timer));
    socket.on('close', () => clearTimeout(this.#timer));
  }

  onData(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    if (this.#buf.length > MAX_HANDSHAKE_BYTES) return this.fail(REPLY.generalFailure, 'handshake too long');
    if (!this.#greeted) {
      const g = parseGreeting(this.#buf);
      if (g.kind === 'need-more') return;
      if (g.kind === 'error') return this.fail(g.reply, g.reason, false);
      if (g.kind !== 'greeting') return;
      if (!g.noAuth) {
        this.socket.end(NO_ACCEPTABLE_METHOD);
        this.socket.destroySoon();
        return;
      }
      this.socket.write(Buffer.from([VERSION, METHOD_NO_AUTH]));
      this.#greeted = true;
      this.#buf = this.#buf.subarray(g.consumed);
    }
    const r = parseRequest(this.#buf);
    if (r.kind === 'need-more') return;
    if (r.kind === 'error') return this.fail(r.reply, r.reason);
    if (r.kind !== 'connect') return;
    if (r.consumed !== this.#buf.length)
      return this.fail(REPLY.generalFailure, 'data sent before the CONNECT reply');
    clearTimeout(this.#timer);
    this.socket.off('data', this.onData);
    this.socket.pause();
    this.outbound.handle(this.socket, r.dst, this.onReady);
  }

  onReady(ok: boolean): void {
    if (ok) this.socket.write(reply(REPLY.succeeded));
    else this.socket.end(reply(REPLY.hostUnreachable));
  }

  fail(code: number, reason: string, withReply = true): void {
    clearTimeout(this.#timer);
    this.log.debug({ 'src.addr': this.socket.remoteAddress, reason }, 'socks5 handshake refused');
    if (withReply) {
      this.socket.end(reply(code));
      // The server allows half-open sockets; a refused client must not keep one open by never closing.
      this.socket.destroySoon();
    } else this.socket.destroy();
  }
}

export class Socks5Server {
  readonly #server: net.Server;

  constructor(outbound: OutboundProxy, log: Logger) {
    this.#server = net.createServer({ allowHalfOpen: true }, (socket) => {
      tuneSocket(socket);
      new Socks5Handshake(socket, outbound, log);
    });
    survivingAcceptErrors(this.#server, 'socks5', log);
  }

  async listen(addr: HostPort): Promise<HostPort> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(addr.port, addr.host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    return { host: addr.host, port: (this.#server.address() as net.AddressInfo).port };
  }

  /** As `listen`, but a port still held (by the agent this one replaces) is waited for. */
  listenWhenFree(addr: HostPort, log: Logger): HostPort {
    return listenWhenFree(this.#server, addr, log);
  }

  close(): void {
    this.#server.close();
  }
}
