// How the waypoint opens its fixed TCP ports (HBONE, readiness, metrics, admin): as SO_REUSEPORT
// listeners, so a new waypoint process can start beside the one it replaces, in the same network
// namespace, and serve before the old one stops accepting (`weft lab restart waypoint`). Node 20 has no
// reusePort option: the native addon makes the socket (ebpf-redirect `listenShared`) and Node listens on
// its fd. Without the addon (the waypoint image carries no native code) the ports are plain listeners:
// everything works, only a second process cannot bind them while the first runs.
//
// Linux spreads new connections over every listener of a port. When the old process closes its
// listener, connections still in its accept queue are reset, unless `net.ipv4.tcp_migrate_req` is 1 in
// that network namespace (kernel 5.14+): then the kernel moves them to the successor's listener.
// `checkMigrateReq` warns when it is not. The sysctl is namespaced but not in Kubernetes' "safe" set:
// a pod that restarts its waypoint in place needs it allowed on the kubelet
// (`--allowed-unsafe-sysctls=net.ipv4.tcp_migrate_req`) and set in the pod's securityContext.sysctls.
import { readFileSync } from 'node:fs';
import { isIPv4, type Server } from 'node:net';
import { formatHostPort, type HostPort } from '../core/address.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { loadAddon, type WeftEbpfAddon } from '../ebpf-redirect/native.js';

/** Node's own default listen backlog. */
const LISTEN_BACKLOG = 511;
const MIGRATE_REQ_SYSCTL = '/proc/sys/net/ipv4/tcp_migrate_req';

export class ListenerFactory {
  readonly #addon: WeftEbpfAddon | undefined;
  readonly #log: Logger;

  /** `share: false` (or no addon) gives plain listeners. */
  constructor(log: Logger, share = true) {
    this.#log = log;
    let addon: WeftEbpfAddon | undefined;
    if (share)
      try {
        addon = loadAddon();
        if (typeof addon.listenShared !== 'function')
          throw new Error('the addon has no listenShared: rebuild it');
      } catch (err) {
        addon = undefined;
        log.info(
          { reason: errorMessage(err) },
          'ports are plain listeners (no SO_REUSEPORT): a new waypoint process cannot start beside this one',
        );
      }
    this.#addon = addon;
  }

  /** Whether the ports are shared (SO_REUSEPORT). */
  get shared(): boolean {
    return this.#addon !== undefined;
  }

  /** Starts `server` on `addr`; resolves with the bound address (port 0 gives the chosen port). */
  async listen(server: Server, addr: HostPort): Promise<HostPort> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      const onListening = (): void => {
        server.off('error', onError);
        resolve();
      };
      // The addon binds IPv4 literals; anything else ('::', a name) is listened on as usual.
      if (this.#addon !== undefined && isIPv4(addr.host)) {
        let fd: number;
        try {
          fd = this.#addon.listenShared(addr.host, addr.port, LISTEN_BACKLOG);
        } catch (err) {
          server.off('error', onError);
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        server.listen({ fd }, onListening);
      } else server.listen(addr.port, addr.host, onListening);
    });
    const bound = server.address();
    return { host: addr.host, port: typeof bound === 'object' && bound ? bound.port : addr.port };
  }

  /**
   * Warns when connections queued on this process's shared listeners would be reset, not handed to a
   * successor, when it stops accepting.
   */
  checkMigrateReq(listening: readonly HostPort[]): void {
    if (!this.shared) return;
    let value: string;
    try {
      value = readFileSync(MIGRATE_REQ_SYSCTL, 'utf8').trim();
    } catch {
      value = 'missing (kernel older than 5.14)';
    }
    if (value === '1') return;
    this.#log.warn(
      {
        sysctl: 'net.ipv4.tcp_migrate_req',
        value,
        ports: listening.map(formatHostPort),
      },
      'connections queued when this process stops accepting will be reset, not moved to its successor: ' +
        'set net.ipv4.tcp_migrate_req=1 in its network namespace',
    );
  }
}
