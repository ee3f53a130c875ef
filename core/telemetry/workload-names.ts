// Istio's names for a workload in telemetry: workload (the controller's name), canonical service and
// revision, app and version — derived from labels exactly as Istio does, so dashboards group alike.
import type { Workload } from '../model/workload.js';

export interface WorkloadNames {
  readonly workload: string;
  readonly canonicalService: string;
  readonly canonicalRevision: string;
  readonly app: string;
  readonly version: string;
}

function firstLabel(labels: Readonly<Record<string, string>>, keys: readonly string[]): string | undefined {
  for (const k of keys) {
    const v = labels[k];
    if (v) return v;
  }
  return undefined;
}

/**
 * A Deployment's pods are named `<deployment>-<pod-template-hash>-<5 chars>`; with the hash label present
 * we can recover the Deployment name without the owner chain. Otherwise the pod is its own workload.
 */
function workloadName(w: Workload): string {
  const hash = w.labels['pod-template-hash'];
  if (hash) {
    const marker = `-${hash}-`;
    const i = w.name.lastIndexOf(marker);
    if (i > 0) return w.name.slice(0, i);
  }
  return w.name;
}

const cache = new WeakMap<Workload, WorkloadNames>();

export function workloadNames(w: Workload): WorkloadNames {
  let names = cache.get(w);
  if (!names) {
    const workload = workloadName(w);
    names = {
      workload,
      canonicalService:
        firstLabel(w.labels, ['service.istio.io/canonical-name', 'app.kubernetes.io/name', 'app']) ??
        workload,
      canonicalRevision:
        firstLabel(w.labels, [
          'service.istio.io/canonical-revision',
          'app.kubernetes.io/version',
          'version',
        ]) ?? 'latest',
      app: firstLabel(w.labels, ['app.kubernetes.io/name', 'app']) ?? 'unknown',
      version: firstLabel(w.labels, ['app.kubernetes.io/version', 'version']) ?? 'unknown',
    };
    cache.set(w, names);
  }
  return names;
}
