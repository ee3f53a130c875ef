// Choosing a config source from its command-line spec. Sources are constructed here explicitly;
// nothing registers itself by being imported.
import { resolve } from 'node:path';
import { WeftError } from '../errors.js';
import { FileSource, type FileSourceOptions } from './file.js';
import type { KubernetesSourceOptions } from './kubernetes.js';
import type { ConfigSink, ConfigSource } from './source.js';

export type { ConfigBatch, ConfigSink, ConfigSource } from './source.js';
export { FileSource, type FileSourceOptions } from './file.js';
export type { KubernetesSourceOptions } from './kubernetes.js';

export interface ConfigSourceOptions {
  readonly file?: FileSourceOptions;
  /** Everything but the kubeconfig path, which comes from the spec. */
  readonly kubernetes?: Omit<KubernetesSourceOptions, 'kubeconfigPath'>;
}

/**
 * `file:DIR` -> a FileSource watching DIR (relative paths resolve against the working directory).
 * `kubernetes` -> informers against the API server, with the pod's in-cluster credentials.
 * `kubernetes:KUBECONFIG` -> the same through a kubeconfig file (development and tests).
 */
export function createConfigSource(spec: string, options: ConfigSourceOptions = {}): ConfigSource {
  if (spec.startsWith('file:')) {
    const dir = spec.slice('file:'.length);
    if (dir === '') throw invalidSpec(spec, 'file: needs a folder, e.g. file:./manifests');
    return new FileSource(resolve(dir), options.file);
  }
  if (spec === 'kubernetes') return new DeferredKubernetesSource(options.kubernetes ?? {});
  if (spec.startsWith('kubernetes:')) {
    const kubeconfig = spec.slice('kubernetes:'.length);
    if (kubeconfig === '')
      throw invalidSpec(spec, 'kubernetes: needs a kubeconfig file, or use kubernetes alone in a cluster');
    return new DeferredKubernetesSource({ ...options.kubernetes, kubeconfigPath: resolve(kubeconfig) });
  }
  throw invalidSpec(spec, 'expected file:DIR (a folder of manifests), kubernetes or kubernetes:KUBECONFIG');
}

/**
 * For a `kubernetes` or `kubernetes:KUBECONFIG` spec, where the API credentials come from (`path`
 * undefined: in-cluster); undefined for any other source.
 */
export function kubernetesCredentialsOf(spec: string): { readonly path: string | undefined } | undefined {
  if (spec === 'kubernetes') return { path: undefined };
  if (spec.startsWith('kubernetes:') && spec.length > 'kubernetes:'.length)
    return { path: resolve(spec.slice('kubernetes:'.length)) };
  return undefined;
}

function invalidSpec(spec: string, why: string): WeftError {
  return new WeftError('ERR_CONFIG_INVALID', `config source ${JSON.stringify(spec)}: ${why}`, {
    field: 'config source',
  });
}

/**
 * The Kubernetes source, its module loaded when it starts: @kubernetes/client-node is a large share of a
 * process's start-up (an agent restarted with a `file:` source never needs it), and a process that
 * uses it pays once, at start, where it waits for the API server's lists anyway.
 */
class DeferredKubernetesSource implements ConfigSource {
  readonly description: string;
  readonly #options: KubernetesSourceOptions;
  #source: Promise<ConfigSource> | undefined;

  constructor(options: KubernetesSourceOptions) {
    this.#options = options;
    // As KubernetesSource names itself.
    this.description =
      options.kubeconfigPath === undefined ? 'kubernetes' : `kubernetes:${options.kubeconfigPath}`;
  }

  async start(sink: ConfigSink): Promise<void> {
    this.#source ??= import('./kubernetes.js').then((m) => new m.KubernetesSource(this.#options));
    return (await this.#source).start(sink);
  }

  async stop(): Promise<void> {
    if (this.#source !== undefined) await (await this.#source).stop();
  }
}
