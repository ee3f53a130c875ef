// Typed access to the native addon (addon/, N-API in C, built by `npm ci` through node-gyp). The addon
// only makes sockets, talks bpf(2) and drives libbpf; every decision is in TypeScript or in the BPF
// programs. It is loaded on first use, so importing this module never fails; calling it without a
// built addon throws AddonUnavailableError saying how to build it.
//
// Sockets it returns are plain fds, handed to Node like this:
//   listener:  net.createServer(onConnection).listen({ fd: listenTransparent('127.0.0.1', 15001, 511) })
//              → each accepted socket's localAddress:localPort is the ORIGINAL destination.
//   onward:    new net.Socket({ fd: socketWithMark(MARK.onward, clientIp), readable: true, writable: true,
//                               manualStart: true }).connect(port, host)
//              manualStart (undocumented, present since Node 0.x) stops the constructor from reading
//              the not-yet-connected fd (that read would fail with ENOTCONN); connect() then reuses
//              the socket with its mark and transparent bind. Pass an IP literal as host (no lookup)
//              and no localAddress/localPort. See connectMarked() below, which does exactly this.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

/** Constants compiled into the addon from bpf/weft_capture.h (tests compare them with maps.ts). */
export interface AddonConstants {
  readonly layoutVersion: number;
  readonly markSteer: number;
  readonly markOnward: number;
  readonly markMask: number;
  readonly routeTable: number;
  readonly rulePref: number;
  readonly tcHandle: number;
  readonly tcPriority: number;
  readonly configSize: number;
  readonly statCount: number;
}

export interface LoadResult {
  readonly layoutVersion: number;
  /** Maps that were already pinned in pinDir and were re-opened (state kept across restarts). */
  readonly reusedMaps: readonly string[];
  /** Maps created and pinned now. */
  readonly createdMaps: readonly string[];
  /** Program name → pin path of the freshly loaded programs. */
  readonly programs: Readonly<Record<string, string>>;
}

export interface SkLookupAttachment {
  /** True when the pinned link was still attached to this netns and was re-opened (and updated). */
  readonly reused: boolean;
  readonly linkId: number;
  readonly progId: number;
}

export interface MapInfo {
  readonly id: number;
  /** enum bpf_map_type */
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly name: string;
}

/** Raw kernel feature probe; featureProblems() in capture-maps.ts turns it into reasons. */
export interface ProbeResult {
  readonly kernel?: string;
  readonly bpffsPath: string;
  readonly bpffs: boolean;
  readonly progTc: boolean;
  readonly progSkLookup: boolean;
  readonly mapSockmap: boolean;
  readonly helperSkcLookupTcp: boolean;
  readonly helperSkAssign: boolean;
  readonly tcClsact: boolean;
  readonly transparentSockets: boolean;
}

/**
 * The addon's functions. Errors are thrown as Error with `code` ('EPERM', 'ENOENT', … from the failing
 * syscall, with `syscall` and `errno`; or 'ERR_WEFT_LAYOUT', 'ERR_WEFT_NO_BPFFS', 'ERR_WEFT_BPF_LOAD', …).
 */
export interface WeftEbpfAddon {
  readonly constants: AddonConstants;
  /** IP_TRANSPARENT + SO_REUSEADDR + SO_REUSEPORT listener on host:port (IPv4 literal); returns the fd. */
  listenTransparent(host: string, port: number, backlog: number): number;
  /**
   * SO_REUSEADDR + SO_REUSEPORT listener on host:port (IPv4 literal); returns the fd. A successor
   * process binds the same port while its predecessor still serves (restarts without a gap).
   */
  listenShared(host: string, port: number, backlog: number): number;
  /** Unconnected TCP socket with SO_MARK; with sourceIp, IP_TRANSPARENT-bound to (sourceIp, any port). */
  socketWithMark(mark: number, sourceIp?: string): number;
  /** Closes an fd that was never handed to Node. */
  closeFd(fd: number): void;
  /** if_nametoindex in the calling process's network namespace. */
  ifNameToIndex(name: string): number;
  /** Loads the object, reusing maps pinned in pinDir (or pinning them), pins both programs there. */
  load(objectPath: string, pinDir: string): LoadResult;
  /** clsact ingress filter with the pinned tc program; replaces ours atomically if present. */
  attachTcIngress(ifindex: number, pinDir: string): { readonly progId: number };
  /** Program id of our ingress filter on ifindex, or null. */
  queryTcIngress(ifindex: number): number | null;
  /** Removes our ingress filter (leaves the clsact qdisc); false if it was not there. */
  detachTcIngress(ifindex: number): boolean;
  /** Attaches the pinned sk_lookup program to a netns and pins the link, or re-opens the pinned link. */
  attachSkLookup(netnsPath: string, pinDir: string): SkLookupAttachment;
  /** Detaches and unpins the sk_lookup link; false if none was pinned. */
  detachSkLookup(pinDir: string): boolean;
  mapUpdate(pinPath: string, key: Buffer, value: Buffer): void;
  /** False when the key was not there. */
  mapDelete(pinPath: string, key: Buffer): boolean;
  /** The value, or null; per-CPU maps return one 8-byte-aligned slot per possible CPU. */
  mapLookup(pinPath: string, key: Buffer): Buffer | null;
  mapKeys(pinPath: string): Buffer[];
  mapInfo(pinPath: string): MapInfo;
  /** Puts a socket fd into a SOCKMAP slot; the kernel removes it when the socket closes. */
  sockmapPut(pinPath: string, key: number, fd: number): void;
  probe(bpffsPath?: string): ProbeResult;
}

export class AddonUnavailableError extends Error {
  readonly code = 'ERR_WEFT_ADDON_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AddonUnavailableError';
  }
}

const FROM_SOURCE = import.meta.url.endsWith('.ts');
// From source: ebpf-redirect/native.ts. Built: dist/ebpf-redirect/native.js (the addon is not copied).
const FOLDER = new URL(FROM_SOURCE ? './' : '../../ebpf-redirect/', import.meta.url);

/** The built addon (node-gyp's output inside addon/). */
export const ADDON_PATH = fileURLToPath(new URL('addon/build/Release/weft_ebpf.node', FOLDER));

/** The committed BPF object (bpf/build.sh rebuilds it). */
export const CAPTURE_OBJECT_PATH = fileURLToPath(new URL('bpf/capture.bpf.o', FOLDER));

let cached: WeftEbpfAddon | undefined;

/** Loads the addon once; throws AddonUnavailableError with the reason and the fix. */
export function loadAddon(): WeftEbpfAddon {
  if (cached) return cached;
  if (process.platform !== 'linux') {
    throw new AddonUnavailableError(`the weft_ebpf addon is Linux-only (this is ${process.platform})`);
  }
  if (!existsSync(ADDON_PATH)) {
    throw new AddonUnavailableError(
      `the weft_ebpf addon is not built (${ADDON_PATH} is missing): run "npm run build:addon" ` +
        '(needs g++, make, python3 and libbpf-dev libelf-dev zlib1g-dev)',
    );
  }
  try {
    cached = createRequire(import.meta.url)(ADDON_PATH) as WeftEbpfAddon;
  } catch (err) {
    throw new AddonUnavailableError(
      `cannot load the weft_ebpf addon ${ADDON_PATH}: ${(err as Error).message} ` +
        '(rebuild with "npm run build:addon"; the runtime needs libbpf1 and libelf1)',
      { cause: err },
    );
  }
  return cached;
}

/** Why the addon cannot be used here, or undefined when it can. */
export function addonUnavailable(): string | undefined {
  try {
    loadAddon();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Connects a marked (and, with sourceIp, transparently source-bound) onward socket to host:port (an IPv4
 * literal). Resolves once connected; rejects (and destroys the socket) on a connect error.
 */
export function connectMarked(
  host: string,
  port: number,
  options: { readonly mark: number; readonly sourceIp?: string },
): Promise<Socket> {
  const addon = loadAddon();
  const fd = addon.socketWithMark(options.mark, options.sourceIp);
  let socket: Socket;
  try {
    // allowHalfOpen: a proxied connection carries FIN in each direction separately.
    socket = new Socket({
      fd,
      readable: true,
      writable: true,
      allowHalfOpen: true,
      manualStart: true,
    } as ConstructorParameters<typeof Socket>[0]);
  } catch (err) {
    addon.closeFd(fd);
    throw err;
  }
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
    socket.connect(port, host, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
