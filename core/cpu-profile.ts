// On-demand CPU profiles of a long-running part: with WEFT_CPU_PROFILE_DIR set, the process profiles
// itself from start to stop and writes `<part>-<pid>.cpuprofile` there (open it in Chrome DevTools).
// For lab pods, where `node --cpu-prof` cannot be slipped into the command line (NODE_OPTIONS refuses it).
import { Session } from 'node:inspector/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CPU_PROFILE_ENV = 'WEFT_CPU_PROFILE_DIR';

/** Starts profiling if asked to; the returned function stops and writes the profile (a no-op otherwise). */
export async function cpuProfileFromEnv(part: string): Promise<() => Promise<void>> {
  const dir = process.env[CPU_PROFILE_ENV];
  if (!dir) return async () => undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${part}-${process.pid}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  };
}
