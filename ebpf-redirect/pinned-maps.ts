// Typed operations on the pinned capture maps: enrolment, listeners, config and counters. A thin layer
// over the addon's bpf(2) calls and maps.ts's encoders; every call opens the pinned map by path, so any
// process (the agent, `weft`, a test) can use it while the agent runs.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadAddon, type WeftEbpfAddon } from './native.js';
import {
  decodeConfig,
  decodeU64,
  decodeEnrolment,
  decodeStats,
  DEFAULT_CONFIG,
  encodeConfig,
  encodeEnrolment,
  indexKey,
  ipv4FromKey,
  ipv4Key,
  LAYOUT_VERSION,
  LISTENER_KEY,
  MAP,
  type CaptureConfig,
  type CaptureStats,
  type Enrolment,
  type ListenerName,
  type MapName,
} from './maps.js';

/** Where the agent pins: one directory per layout version, so two layouts never share a map. */
export const DEFAULT_PIN_DIR = `/sys/fs/bpf/weft/v${LAYOUT_VERSION}`;

export class PinnedMaps {
  constructor(
    readonly pinDir: string,
    private readonly addon: WeftEbpfAddon = loadAddon(),
  ) {}

  path(name: MapName): string {
    return join(this.pinDir, name);
  }

  /** Sets an IP's enrolment; new connections see it at once. */
  enrol(ip: string, enrolment: Enrolment): void {
    this.addon.mapUpdate(this.path(MAP.enrolled), ipv4Key(ip), encodeEnrolment(enrolment));
  }

  /**
   * Removes an IP. Captured connections of that IP keep working only while their node sockets exist;
   * drain first (enrol with drain: true) and remove when the agent holds no connection of it.
   */
  unenrol(ip: string): boolean {
    return this.addon.mapDelete(this.path(MAP.enrolled), ipv4Key(ip));
  }

  enrolment(ip: string): Enrolment | undefined {
    const value = this.addon.mapLookup(this.path(MAP.enrolled), ipv4Key(ip));
    return value ? decodeEnrolment(value) : undefined;
  }

  /** Every enrolled IP (for reconciling after a restart). */
  enrolments(): Map<string, Enrolment> {
    const out = new Map<string, Enrolment>();
    const path = this.path(MAP.enrolled);
    for (const key of this.addon.mapKeys(path)) {
      const value = this.addon.mapLookup(path, key);
      if (value) out.set(ipv4FromKey(key), decodeEnrolment(value));
    }
    return out;
  }

  /** Publishes a listening socket; the kernel drops the slot when the socket closes (fail closed). */
  putListener(name: ListenerName, fd: number): void {
    this.addon.sockmapPut(this.path(MAP.listeners), LISTENER_KEY[name], fd);
  }

  /** The socket cookie in a listener slot, or undefined when the slot is empty (that listener is down). */
  listenerCookie(name: ListenerName): bigint | undefined {
    const value = this.addon.mapLookup(this.path(MAP.listeners), indexKey(LISTENER_KEY[name]));
    return value ? decodeU64(value) : undefined;
  }

  readConfig(): CaptureConfig {
    const value = this.addon.mapLookup(this.path(MAP.config), indexKey(0));
    if (!value) throw new Error(`${this.path(MAP.config)} has no entry 0`);
    return decodeConfig(value);
  }

  /** Writes the whole config (the layout version is always this build's). */
  writeConfig(changes: Partial<Omit<CaptureConfig, 'layoutVersion'>>): void {
    const next = { ...DEFAULT_CONFIG, ...this.readConfig(), ...changes, layoutVersion: LAYOUT_VERSION };
    this.addon.mapUpdate(this.path(MAP.config), indexKey(0), encodeConfig(next));
  }

  /** Counters summed over CPUs (see weft_capture.h for each one's meaning). */
  readStats(): CaptureStats {
    const path = this.path(MAP.stats);
    return decodeStats((key) => this.addon.mapLookup(path, key));
  }
}

/**
 * Unpins everything under pinDir: maps (freed once no program uses them) and the sk_lookup link
 * (detached once unpinned). tc filters stay until detachTcIngress or until their device goes away.
 */
export function removePins(pinDir: string): void {
  rmSync(pinDir, { recursive: true, force: true });
}
