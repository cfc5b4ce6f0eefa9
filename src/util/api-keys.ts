// API keys (used by the HTTP layer and by `convserve keys`, hence here, below both): the keys file format (CONVSERVE_API_KEYS_FILE, or the same JSON inline in CONVSERVE_API_KEYS), and
// the lookup of a presented key. Only SHA-256 hashes are stored; a presented key is hashed and compared with
// every stored hash in constant time (crypto.timingSafeEqual, no early exit), so neither the file nor the
// timing of an answer tells anything about a valid key.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import type { Config } from '../config.js';

/** The owner of whatever is done without a key (a server without keys; job records older than owners). */
export const ANONYMOUS_OWNER = 'anonymous';

const describeIssues = (error: z.ZodError) => error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');

/** `use`: the API; `admin`: also model reload/installation, /v1/info details, /metrics, every owner's jobs. */
export const KNOWN_SCOPES = ['use', 'admin'] as const;
export type Scope = (typeof KNOWN_SCOPES)[number];

export const ApiKeyEntrySchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9][\w.@-]{0,63}$/, 'a key id: letters, digits, _ . @ -, at most 64 characters')
    .refine((id) => id !== ANONYMOUS_OWNER, `'${ANONYMOUS_OWNER}' is reserved for callers without a key`),
  key_sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'the SHA-256 of the key as 64 hex digits'),
  // Unknown scopes are kept (a newer version's file) but grant nothing here.
  scopes: z.array(z.string()).min(1),
});
export type ApiKeyEntry = z.infer<typeof ApiKeyEntrySchema>;

export const ApiKeysSchema = z.array(ApiKeyEntrySchema).superRefine((list, c) => {
  const seen = new Set<string>();
  for (const [i, e] of list.entries()) {
    if (seen.has(e.id)) c.addIssue({ code: 'custom', path: [i, 'id'], message: `duplicate key id '${e.id}'` });
    seen.add(e.id);
  }
});

/** The caller a valid key identifies. */
export interface KeyHolder {
  id: string;
  scopes: readonly string[];
  admin: boolean;
}

export function sha256Hex(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A new random key (256 bits, URL-safe), shown once to its owner; only its hash is stored. */
export function newApiKey(): string {
  return `cs_${randomBytes(32).toString('base64url')}`;
}

/** Parses a keys document (the file's text or the inline variable); `source` names it in the error. */
export function parseApiKeys(text: string, source: string): ApiKeyEntry[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
  }
  const parsed = ApiKeysSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${source}: not a valid list of API keys: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** A set of keys, looked up by the hash of a presented key. */
export class KeyRing {
  private readonly hashes: { entry: ApiKeyEntry; digest: Buffer }[];

  constructor(entries: readonly ApiKeyEntry[]) {
    this.hashes = entries.map((entry) => ({ entry, digest: Buffer.from(entry.key_sha256, 'hex') }));
  }

  get size(): number {
    return this.hashes.length;
  }

  /** The holder of `key`, or undefined. Every stored hash is compared (constant time), whatever matches first. */
  lookup(key: string): KeyHolder | undefined {
    const digest = createHash('sha256').update(key, 'utf8').digest();
    let found: ApiKeyEntry | undefined;
    for (const h of this.hashes) if (timingSafeEqual(h.digest, digest) && !found) found = h.entry;
    if (!found) return undefined;
    return { id: found.id, scopes: found.scopes, admin: found.scopes.includes('admin') };
  }
}

/**
 * The configured keys, or undefined when none are configured (neither variable set). The keys file is read
 * again when its modification time or size changes (checked at most once a second), so `convserve keys add`
 * takes effect without a restart; a file that became invalid keeps the previous keys and is reported once.
 */
export class KeySource {
  private ring: KeyRing;
  private fileStamp = '';
  private checkedAt = 0;

  private constructor(private readonly config: Config, private readonly onReloadError: (message: string) => void) {
    this.ring = this.read();
  }

  static fromConfig(config: Config, onReloadError: (message: string) => void = () => undefined): KeySource | undefined {
    if (!config.apiKeysFile && !config.apiKeys) return undefined;
    return new KeySource(config, onReloadError);
  }

  current(now = Date.now()): KeyRing {
    if (this.config.apiKeysFile && now - this.checkedAt >= 1000) {
      this.checkedAt = now;
      if (this.stamp() !== this.fileStamp) {
        try {
          this.ring = this.read();
        } catch (e) {
          this.fileStamp = this.stamp();
          this.onReloadError((e as Error).message);
        }
      }
    }
    return this.ring;
  }

  private stamp(): string {
    try {
      const s = statSync(this.config.apiKeysFile);
      return `${s.mtimeMs}:${s.size}`;
    } catch {
      return 'missing';
    }
  }

  private read(): KeyRing {
    const entries: ApiKeyEntry[] = [];
    if (this.config.apiKeysFile) {
      this.fileStamp = this.stamp();
      let text: string;
      try {
        text = readFileSync(this.config.apiKeysFile, 'utf8');
      } catch (e) {
        throw new Error(`CONVSERVE_API_KEYS_FILE=${this.config.apiKeysFile}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
      entries.push(...parseApiKeys(text, `CONVSERVE_API_KEYS_FILE=${this.config.apiKeysFile}`));
    }
    if (this.config.apiKeys) entries.push(...parseApiKeys(this.config.apiKeys, 'CONVSERVE_API_KEYS'));
    const ids = entries.map((e) => e.id);
    const dup = ids.find((id, i) => ids.indexOf(id) !== i);
    if (dup) throw new Error(`API keys: the id '${dup}' is used twice (in CONVSERVE_API_KEYS_FILE and CONVSERVE_API_KEYS)`);
    return new KeyRing(entries);
  }
}
