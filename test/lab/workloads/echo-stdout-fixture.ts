// Runs the echo as a pod does (runEcho, writing to the real stdout) for echo-stdout.test.ts; the port
// is chosen by the OS and read back from the startup line. Without --serve it does nothing, so a tap
// run over this whole directory finds no tests here instead of waiting for a SIGTERM.
import { runEcho } from '../../../lab/workloads/echo.js';
import { IDENTITY } from './echo-peers.js';

if (process.argv.includes('--serve'))
  await runEcho(
    { host: '127.0.0.1', port: 0, identity: IDENTITY },
    (line) => void process.stdout.write(`${line}\n`),
  );
process.exit(0);
