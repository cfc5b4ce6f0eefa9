// The safe default bind: without API keys the server is a local tool, so it listens on loopback; binding any
// other address without keys would hand every job, result and model reload to whoever reaches the port, and is
// refused unless CONVSERVE_ALLOW_ANONYMOUS=true says it is meant.
import { isIP } from 'node:net';
import type { Config } from '../config.js';

/** Whether `host` (a bind address or a Host name, brackets allowed) is this machine's loopback. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === '::1' || /^::ffff:127\./.test(h);
}

export function keysConfigured(config: Pick<Config, 'apiKeysFile' | 'apiKeys'>): boolean {
  return Boolean(config.apiKeysFile || config.apiKeys);
}

/** Throws one line saying why when `config` would expose an anonymous server beyond loopback. */
export function checkBindPolicy(config: Pick<Config, 'host' | 'apiKeysFile' | 'apiKeys' | 'allowAnonymous'>): void {
  if (keysConfigured(config) || config.allowAnonymous || isLoopback(config.host)) return;
  throw new Error(`Refusing to listen on ${config.host} without API keys: anyone who can reach it could use the API, read every job and reload models. Configure keys (CONVSERVE_API_KEYS_FILE, see \`convserve keys add\`), bind HOST=127.0.0.1, or set CONVSERVE_ALLOW_ANONYMOUS=true.`);
}
