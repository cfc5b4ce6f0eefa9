// API keys for tests that need several owners against server processes: the keys' JSON for CONVSERVE_API_KEYS,
// and HTTP helpers that send a key (submit a blur-sweep job, read or cancel a job).
import { sha256Hex } from '../../src/util/api-keys.js';

export type Owner = 'alice' | 'bob' | 'carol';

export const OWNER_KEYS: Record<Owner, string> = { alice: 'key-alice-0123456789', bob: 'key-bob-0123456789', carol: 'key-carol-0123456789' };

/** CONVSERVE_API_KEYS for the three owners (scope `use`: each sees only its own jobs). */
export const ownerKeysJson = JSON.stringify(Object.entries(OWNER_KEYS).map(([id, key]) => ({ id, key_sha256: sha256Hex(key), scopes: ['use'] })));

export interface Reply { status: number; headers: Headers; body: any }

export async function ownerFetch(who: Owner, url: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(url, { ...init, headers: { Authorization: `Bearer ${OWNER_KEYS[who]}` } });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

export function submitBlurAs(who: Owner, base: string, png: Buffer, params: Record<string, unknown>): Promise<Reply> {
  const form = new FormData();
  form.set('image', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'in.png');
  for (const [k, v] of Object.entries(params)) form.set(k, String(v));
  return ownerFetch(who, `${base}/v1/jobs/blur-sweep`, { method: 'POST', body: form });
}

/** Polls GET /v1/jobs/{id} as `who` until `pred` holds. */
export async function pollJobAs(who: Owner, base: string, id: string, pred: (j: any) => boolean, timeoutMs = 30_000): Promise<any> {
  const t0 = Date.now();
  for (;;) {
    const { body } = await ownerFetch(who, `${base}/v1/jobs/${id}`);
    if (pred(body)) return body;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for job ${id}: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls until `read()` returns a value `pred` accepts (the last value in the error otherwise). */
export async function eventually<T>(read: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await read();
    if (pred(v)) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
