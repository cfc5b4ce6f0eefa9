// `convserve keys add <id> [--admin]`: makes a new random API key, prints it once, and appends only its SHA-256
// to the keys file (CONVSERVE_API_KEYS_FILE or --file), created readable by its owner only (0600) and rewritten
// atomically (temporary file, fsync, rename, fsync of the folder). `convserve keys list`: ids and scopes.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { type ApiKeyEntry, ApiKeyEntrySchema, newApiKey, parseApiKeys, sha256Hex } from '../util/api-keys.js';

function keysFile(opt: string | undefined): string {
  const file = opt ?? loadConfig().apiKeysFile;
  if (!file) throw new Error('No keys file: pass --file <path> or set CONVSERVE_API_KEYS_FILE.');
  return resolve(file);
}

function readKeys(file: string): ApiKeyEntry[] {
  return existsSync(file) ? parseApiKeys(readFileSync(file, 'utf8'), file) : [];
}

/** Writes `text` to `file` so that a reader sees the old or the new file, never a part, and only the owner can read it. */
export function writePrivateAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
  const dir = openSync(dirname(file), 'r');
  try { fsyncSync(dir); } catch { /* some file systems cannot fsync a directory */ } finally { closeSync(dir); }
}

/** Adds a key `id` to `file`; returns the key (the only time it exists outside its holder). */
export function addKey(file: string, id: string, admin: boolean): string {
  const keys = readKeys(file);
  if (keys.some((k) => k.id === id)) throw new Error(`${file} already has a key '${id}' (ids are unique; remove it from the file first to replace it).`);
  const key = newApiKey();
  const entry = ApiKeyEntrySchema.safeParse({ id, key_sha256: sha256Hex(key), scopes: admin ? ['use', 'admin'] : ['use'] });
  if (!entry.success) throw new Error(`invalid key id '${id}': ${entry.error.issues.map((i) => i.message).join('; ')}`);
  writePrivateAtomic(file, `${JSON.stringify([...keys, entry.data], null, 2)}\n`);
  return key;
}

export function registerKeysCommands(program: Command): void {
  const keys = program.command('keys').description('API keys of the HTTP service (only their SHA-256 is stored).');
  keys
    .command('add <id>')
    .description('Make a new API key, print it once, and append its hash to the keys file (created 0600).')
    .option('--admin', 'also the admin scope (model reload, /v1/info details, /metrics, every owner\'s jobs)')
    .option('--file <path>', 'the keys file (default: CONVSERVE_API_KEYS_FILE)')
    .action((id: string, opts: { admin?: boolean; file?: string }) => {
      const file = keysFile(opts.file);
      const key = addKey(file, id, opts.admin === true);
      process.stderr.write(`Added key '${id}' (${opts.admin ? 'use, admin' : 'use'}) to ${file}. It is shown only now:\n`);
      process.stdout.write(`${key}\n`);
    });
  keys
    .command('list')
    .description('The key ids and their scopes.')
    .option('--file <path>', 'the keys file (default: CONVSERVE_API_KEYS_FILE)')
    .action((opts: { file?: string }) => {
      for (const k of readKeys(keysFile(opts.file))) console.log(`${k.id.padEnd(24)} ${k.scopes.join(',')}`);
    });
}
