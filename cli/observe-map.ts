// `weft observe map` and `weft observe suggest`: the service map and the policy suggestion over the flows
// `weft observe` collects (or a saved file). Both read the config too (the lab's folder, --manifests or
// --config), to name waypoints and to choose label selectors that select only the pods seen.
import { buildServiceMap } from '../observe/service-map.js';
import { renderServiceMapHtml, renderServiceMapSvg, renderServiceMapText } from '../observe/render-map.js';
import { suggestPolicies } from '../observe/suggest.js';
import type { ConfigStore } from '../core/store.js';
import { ANALYSIS_FLAGS, emit, flowsForAnalysis, OBSERVE_USAGE, type ObserveIo } from './observe.js';
import { CONFIG_FLAGS, loadConfig } from './explain.js';
import { parseFlagsAndArgs, UsageError } from './flags.js';

function parse(argv: string[]): Record<string, unknown> {
  const { values, positionals } = parseFlagsAndArgs(argv, { ...ANALYSIS_FLAGS, ...CONFIG_FLAGS });
  if (positionals.length > 0) throw new UsageError(`unexpected ${positionals.join(' ')}\n\n${OBSERVE_USAGE}`);
  return values;
}

/** The config when it can be read; the analysis works without it, less precisely (it says so). */
async function configFor(values: Record<string, unknown>, io: ObserveIo): Promise<ConfigStore | undefined> {
  try {
    return await loadConfig(values);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    io.err(`weft: warning: no config to consult (${(err as Error).message}); going by the flows alone`);
    return undefined;
  }
}

export async function mapCommand(argv: string[], io: ObserveIo): Promise<number> {
  const values = parse(argv);
  const format = values.output ?? 'text';
  if (format !== 'text' && format !== 'svg' && format !== 'html')
    throw new UsageError(`-o/--output: expected text, svg or html, got ${String(format)}`);
  const events = await flowsForAnalysis(values, io);
  const store = await configFor(values, io);
  const map = buildServiceMap(events, store ? { store } : {});
  const text =
    format === 'svg'
      ? renderServiceMapSvg(map)
      : format === 'html'
        ? renderServiceMapHtml(map)
        : renderServiceMapText(map);
  emit(values, text, io);
  return 0;
}

export async function suggestCommand(argv: string[], io: ObserveIo): Promise<number> {
  const values = parse(argv);
  if (values.output !== undefined && values.output !== 'yaml')
    throw new UsageError(`-o/--output: suggest prints YAML only, got ${String(values.output)}`);
  const events = await flowsForAnalysis(values, io);
  const store = await configFor(values, io);
  const suggestion = suggestPolicies(events, store ? { config: store } : {});
  if (suggestion.policies.length === 0) {
    io.err(`weft: no allowed flows to suggest policies from (${events.length} event(s) read)`);
    return 1;
  }
  emit(values, suggestion.yaml, io);
  return 0;
}
