// The feature areas that make up the full service. Each area contributes one ServicePlugin.
import type { ServicePlugin } from './service.js';

export async function plugins(): Promise<ServicePlugin[]> {
  const { inferencePlugin } = await import('./inference-plugin.js');
  const { jobsPlugin } = await import('../jobs/plugin.js');
  const { webPlugin } = await import('./web.js');
  const { metricsPlugin } = await import('./metrics.js');
  // metrics last: it observes the services the others started.
  return [inferencePlugin(), jobsPlugin, webPlugin(), metricsPlugin()];
}
