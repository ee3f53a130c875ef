// `node live-memory-main.js [PORT]`, run inside an agent's network namespace: prints the agent's
// memory after a full GC as one JSON line (live-memory.ts). A separate entry point rather than a `weft`
// subcommand, so that a probe starts in a tenth of the time the whole CLI takes to load: the bench
// probes both agents after every run.
import { INSPECTOR_PORT, inspectLiveMemory } from './live-memory.js';

const port = process.argv[2] === undefined ? INSPECTOR_PORT : Number(process.argv[2]);
process.stdout.write(`${JSON.stringify(await inspectLiveMemory(port))}\n`);
