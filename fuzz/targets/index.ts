// Every fuzz target, by name (`npm run fuzz -- --target NAME`); registered here explicitly.
import type { FuzzTarget } from '../fuzz-target.js';
import { csrTarget } from './csr.js';
import { hboneTarget } from './hbone.js';
import { manifestTarget } from './manifest.js';
import { waypointH2Target } from './waypoint-h2.js';
import { waypointHttp1Target } from './waypoint-http1.js';

export const FUZZ_TARGETS: readonly FuzzTarget<unknown>[] = [
  csrTarget,
  manifestTarget,
  hboneTarget,
  waypointHttp1Target,
  waypointH2Target,
];
