// Every request of the page goes through here: the API key (sessionStorage, sent as `Authorization: Bearer`),
// the key dialog on 401 (then one retry), problem+json errors, images fetched with the key (an <img src> cannot
// send headers), and Server-Sent Events read from a fetch stream (EventSource cannot send headers either).
import { $, type Json } from './dom.js';

const KEY_STORAGE = 'convserve.apiKey';

/** An error carrying the server's problem+json. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly problem: Json | undefined, message: string) { super(message); }
}

export async function problemOf(res: Response): Promise<ApiError> {
  const text = await res.text();
  let body: Json | undefined;
  try { body = JSON.parse(text) as Json; } catch { /* not JSON */ }
  const detail = body?.detail ?? (text || res.statusText);
  return new ApiError(res.status, body, `${res.status} ${body?.title ?? res.statusText}: ${detail}`);
}

export const apiKey = (): string | null => sessionStorage.getItem(KEY_STORAGE);

function withKey(init: RequestInit = {}): RequestInit {
  const key = apiKey();
  if (!key) return init;
  const headers = new Headers(init.headers);
  headers.set('Authorization', `Bearer ${key}`);
  return { ...init, headers };
}

let pendingKey: Promise<boolean> | undefined;

/** Opens the key dialog (once, however many requests were refused); true when a key was entered. */
function askForKey(): Promise<boolean> {
  pendingKey ??= new Promise<boolean>((resolve) => {
    const dialog = $<HTMLDialogElement>('key-dialog');
    const input = $<HTMLInputElement>('key-input');
    input.value = apiKey() ?? '';
    dialog.addEventListener('close', () => {
      pendingKey = undefined;
      const ok = dialog.returnValue === 'save' && input.value.trim() !== '';
      if (ok) sessionStorage.setItem(KEY_STORAGE, input.value.trim());
      resolve(ok);
    }, { once: true });
    dialog.showModal();
  });
  return pendingKey;
}

/** fetch with the API key; a 401 asks for a key and retries once with it. */
export async function apiFetch(url: string, init?: RequestInit): Promise<Response> {
  const res = await fetch(url, withKey(init));
  if (res.status !== 401) return res;
  if (!(await askForKey())) return res;
  return fetch(url, withKey(init));
}

export async function api<T = Json>(url: string, init?: RequestInit): Promise<T> {
  const res = await apiFetch(url, init);
  if (!res.ok) throw await problemOf(res);
  return (await res.json()) as T;
}

/** An object URL of the image at `url` (fetched with the key). */
export async function imageUrl(url: string): Promise<string> {
  const res = await apiFetch(url);
  if (!res.ok) throw await problemOf(res);
  return URL.createObjectURL(await res.blob());
}

export interface SseEvent { id?: string; event: string; data: string }

/** Reads `text/event-stream` from a fetch response body; resumes after the last id when the stream breaks. */
export async function streamEvents(url: string, onEvent: (ev: SseEvent) => boolean | void, signal: AbortSignal): Promise<void> {
  let lastId: string | undefined;
  for (let attempt = 0; attempt < 20 && !signal.aborted; attempt++) {
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    if (lastId) headers['Last-Event-ID'] = lastId;
    let res: Response;
    try { res = await apiFetch(url, { headers, signal }); } catch (e) { if (signal.aborted) return; await pause(1000); continue; }
    if (!res.ok || !res.body) throw await problemOf(res);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, '\n');
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const ev = parseBlock(block);
          if (!ev) continue;
          if (ev.id) lastId = ev.id;
          if (onEvent(ev) === true) { void reader.cancel(); return; }
        }
      }
    } catch {
      if (signal.aborted) return;
    }
    await pause(1000);
  }
}

function parseBlock(block: string): SseEvent | undefined {
  let event = 'message';
  let id: string | undefined;
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (name === 'event') event = value;
    else if (name === 'data') data.push(value);
    else if (name === 'id') id = value;
  }
  return data.length ? { id, event, data: data.join('\n') } : undefined;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
