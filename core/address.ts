// `host:port` listen/dial addresses: the one parser (IPv6 in brackets, port 0 allowed for tests).
import { WeftError } from './errors.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export function parseHostPort(text: string, what: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535)
    throw new WeftError('ERR_CONFIG_INVALID', `${what}: expected host:port, got ${JSON.stringify(text)}`, {
      field: what,
    });
  return { host: (m[1] ?? m[2])!, port };
}

export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Node reports IPv4 peers of a dual-stack socket as `::ffff:a.b.c.d`; the store keys plain IPv4. */
export function unmapIpv4(ip: string | undefined): string {
  if (!ip) return '';
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
