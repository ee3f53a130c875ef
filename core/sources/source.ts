// Where configuration comes from. A source turns some outside representation (a folder of manifests,
// later the Kubernetes API through informers) into ConfigBatches of typed records and hands them to a
// sink. Conversion happens in the source, before the batch exists, so applying is one synchronous step.
import type { Rejection } from '../convert/rejection.js';
import type { ConfigRecord, ObjectKey } from '../model/index.js';

/**
 * One atomic change. A sink applies all of it at once or nothing: readers never see half a batch.
 * - `upserts`: records to add or replace whole (by their key).
 * - `deletes`: objects that no longer exist. Deleting an unknown key is not an error.
 * - `rejections`: objects (or documents) that failed conversion. Each replaces any earlier rejection
 *   with the same `rejectionKey`. A rejection never removes the object's last good record.
 * - `clearedRejections`: `rejectionKey`s of rejections that no longer hold, e.g. the bad file was fixed
 *   or removed. (A rejection without a `file` is also cleared when its object is upserted or deleted.)
 */
export interface ConfigBatch {
  readonly upserts: readonly ConfigRecord[];
  readonly deletes: readonly ObjectKey[];
  readonly rejections: readonly Rejection[];
  readonly clearedRejections?: readonly string[];
}

/** Receives batches. `apply` is synchronous and must not be re-entered from its own listeners. */
export interface ConfigSink {
  apply(batch: ConfigBatch): void;
}

/**
 * A stream of config for one sink.
 * - `start` delivers the whole current state as the first batch (possibly empty, but always applied, so
 *   a sink can tell "loaded, nothing there" from "not loaded yet"), then resolves; later changes follow
 *   as further batches until `stop`.
 * - `start` rejects only when the source cannot work at all (the folder does not exist, the API server
 *   is unreachable); bad objects are rejections inside batches, never a failed start.
 * - After `stop` resolves, no further batch is applied. `start` is called at most once.
 */
export interface ConfigSource {
  /** For logs and status: `file:/etc/weft/config`. */
  readonly description: string;
  start(sink: ConfigSink): Promise<void>;
  stop(): Promise<void>;
}
