// Choosing a config source from its command-line spec. Sources are constructed here explicitly;
// nothing registers itself by being imported.
import { resolve } from 'node:path';
import { WeftError } from '../errors.js';
import { FileSource, type FileSourceOptions } from './file.js';
import type { ConfigSource } from './source.js';

export type { ConfigBatch, ConfigSink, ConfigSource } from './source.js';
export { FileSource, type FileSourceOptions } from './file.js';

export interface ConfigSourceOptions {
  readonly file?: FileSourceOptions;
}

/**
 * `file:DIR` -> a FileSource watching DIR (relative paths resolve against the working directory).
 * `kubernetes` (informers) is planned and rejected for now with a message saying so.
 */
export function createConfigSource(spec: string, options: ConfigSourceOptions = {}): ConfigSource {
  if (spec.startsWith('file:')) {
    const dir = spec.slice('file:'.length);
    if (dir === '') throw invalidSpec(spec, 'file: needs a folder, e.g. file:./manifests');
    return new FileSource(resolve(dir), options.file);
  }
  if (spec === 'kubernetes')
    throw invalidSpec(spec, 'the kubernetes source is not implemented yet; use file:DIR');
  throw invalidSpec(spec, 'expected file:DIR (a folder of manifests) or kubernetes');
}

function invalidSpec(spec: string, why: string): WeftError {
  return new WeftError('ERR_CONFIG_INVALID', `config source ${JSON.stringify(spec)}: ${why}`, {
    field: 'config source',
  });
}
