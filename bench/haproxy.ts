// The baseline: an HAProxy mTLS tunnel pair (Debian's haproxy), one per node, configured by the bench.
// A client connects to the local HAProxy in plain TCP; it opens a TLS 1.3 connection with a client
// certificate to the remote HAProxy, which verifies it and forwards to the workload. One TLS connection
// per client connection: the classic sidecar-less tunnel without multiplexing.
import { openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { MeshLab } from '../lab/mesh-lab.js';

export interface HaproxyRoute {
  /** Where the client connects, on node 0. */
  readonly listen: string;
  /** The remote HAProxy's TLS listener, on node 1. */
  readonly tunnel: string;
  /** The workload behind it. */
  readonly target: string;
}

function config(parts: string[]): string {
  return [
    'global',
    // One thread, as one agent process is one event loop: a like-for-like baseline.
    '  nbthread 1',
    // Within the sandbox's file-descriptor limit (two per connection plus listeners).
    '  maxconn 4096',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 120s',
    '  timeout server 120s',
    ...parts,
    '',
  ].join('\n');
}

export function startHaproxyPair(
  lab: MeshLab,
  dir: string,
  routes: readonly HaproxyRoute[],
  pem: { client: string; server: string; ca: string },
): ChildProcess[] {
  const client: string[] = [];
  const server: string[] = [];
  routes.forEach((r, i) => {
    client.push(
      `frontend in${i}`,
      `  bind ${r.listen}`,
      `  default_backend out${i}`,
      `backend out${i}`,
      `  server tunnel ${r.tunnel} ssl crt ${pem.client} ca-file ${pem.ca} verify required ssl-min-ver TLSv1.3`,
    );
    server.push(
      `frontend tls${i}`,
      `  bind ${r.tunnel} ssl crt ${pem.server} ca-file ${pem.ca} verify required ssl-min-ver TLSv1.3`,
      `  default_backend app${i}`,
      `backend app${i}`,
      `  server app ${r.target}`,
    );
  });
  const clientCfg = join(dir, 'haproxy-client.cfg');
  const serverCfg = join(dir, 'haproxy-server.cfg');
  writeFileSync(clientCfg, config(client));
  writeFileSync(serverCfg, config(server));
  const log = (name: string) => openSync(join(dir, `${name}.log`), 'a');
  const a = lab.node(0).spawn('haproxy', ['-db', '-f', clientCfg], {
    stdio: ['ignore', log('haproxy-client'), log('haproxy-client')],
  });
  const b = lab.node(1).spawn('haproxy', ['-db', '-f', serverCfg], {
    stdio: ['ignore', log('haproxy-server'), log('haproxy-server')],
  });
  lab.track('haproxy-client', a);
  lab.track('haproxy-server', b);
  return [a, b];
}
