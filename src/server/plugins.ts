// The feature areas that make up the full service. Each area contributes one ServicePlugin.
import type { CorePart } from '../app/core.js';
import type { ServicePlugin } from './plugin.js';

export async function plugins(): Promise<ServicePlugin<CorePart>[]> {
  const { inferencePlugin } = await import('./inference-plugin.js');
  const { jobsPlugin } = await import('./jobs-plugin.js');
  const { webPlugin } = await import('./web.js');
  const { metricsPlugin } = await import('./metrics.js');
  // metrics last: it observes the core parts the others use.
  return [inferencePlugin(), jobsPlugin, webPlugin(), metricsPlugin()];
}
