// The page's API key: when the server answers 401, a small dialog asks for a key, which is kept in
// sessionStorage (gone when the tab closes) and sent as `Authorization: Bearer` on every fetch. EventSource
// cannot send headers, so the event stream gets it as `?key=` (the one route that accepts that). Images of
// jobs (previews, results) are fetched with the header and shown as blob: URLs. Without keys on the server,
// nothing changes: no dialog, plain URLs.

const STORAGE = 'convserve.apiKey';

export function apiKey(): string | undefined {
  try {
    return sessionStorage.getItem(STORAGE) ?? undefined;
  } catch {
    return undefined;
  }
}

let asking: Promise<string | undefined> | undefined;

/** Asks for a key once at a time (every request that got a 401 waits for the same answer). */
function askForKey(message: string): Promise<string | undefined> {
  asking ??= new Promise<string | undefined>((resolve) => {
    const dialog = document.createElement('dialog');
    dialog.className = 'key-dialog';
    dialog.setAttribute('aria-labelledby', 'key-dialog-h');
    const form = document.createElement('form');
    form.method = 'dialog';
    const h = document.createElement('h2');
    h.id = 'key-dialog-h';
    h.textContent = 'API key needed';
    const p = document.createElement('p');
    p.textContent = message;
    const label = document.createElement('label');
    label.htmlFor = 'key-input';
    label.textContent = 'API key (kept in this tab only)';
    const input = document.createElement('input');
    input.id = 'key-input';
    input.type = 'password';
    input.autocomplete = 'off';
    input.required = true;
    const ok = document.createElement('button');
    ok.type = 'submit';
    ok.textContent = 'Use key';
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.className = 'secondary';
    cancel.textContent = 'Cancel';
    cancel.addEventListener('click', () => dialog.close(''));
    form.addEventListener('submit', () => { dialog.returnValue = input.value.trim(); });
    form.append(h, p, label, input, ok, cancel);
    dialog.append(form);
    dialog.addEventListener('close', () => {
      const key = dialog.returnValue || undefined;
      if (key) sessionStorage.setItem(STORAGE, key);
      dialog.remove();
      asking = undefined;
      resolve(key);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
  return asking;
}

function withAuth(init: RequestInit = {}): RequestInit {
  const key = apiKey();
  if (!key) return init;
  const headers = new Headers(init.headers);
  headers.set('Authorization', `Bearer ${key}`);
  return { ...init, headers };
}

/** fetch with the key; on 401 asks for a (new) key and tries once more. */
export async function authFetch(url: string, init?: RequestInit): Promise<Response> {
  const res = await fetch(url, withAuth(init));
  if (res.status !== 401) return res;
  const hadKey = apiKey() !== undefined;
  if (hadKey) sessionStorage.removeItem(STORAGE);
  const key = await askForKey(hadKey ? 'The server did not accept the key; enter another one.' : 'This server needs an API key (ask its operator, who makes one with `convserve keys add`).');
  return key ? fetch(url, withAuth(init)) : res;
}

/** The event stream URL, with the key as `?key=` when there is one. */
export function eventSourceUrl(url: string): string {
  const key = apiKey();
  return key ? `${url}${url.includes('?') ? '&' : '?'}key=${encodeURIComponent(key)}` : url;
}

/** Shows the image at `url` in `img` (and as `link`'s target): directly, or fetched with the key as a blob: URL. */
export function showImage(img: HTMLImageElement, url: string, link?: HTMLAnchorElement): void {
  if (!apiKey()) {
    img.src = url;
    if (link) link.href = url;
    return;
  }
  void authFetch(url).then(async (res) => {
    if (!res.ok) return;
    const blobUrl = URL.createObjectURL(await res.blob());
    img.src = blobUrl;
    if (link) link.href = blobUrl;
  });
}
