// Which build produced a bench result: `git describe --always --dirty`, or "unknown" outside a checkout.
import { execFileSync } from 'node:child_process';

export function describeCommit(): string {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}
