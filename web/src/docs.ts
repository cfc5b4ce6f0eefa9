// A minimal, self-contained renderer of /openapi.json (no CDN, no framework): operations grouped by tag, with
// parameters, request bodies and responses; schemas shown as property tables with $refs resolved.

type Json = Record<string, any>;

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | undefined> = {}, ...children: (Node | string | null | undefined)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) { if (k === 'text') el.textContent = v; else el.setAttribute(k, v); }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

let components: Record<string, Json> = {};

function resolve(s: Json | undefined): Json {
  if (s?.$ref && typeof s.$ref === 'string') return components[s.$ref.split('/').pop()!] ?? {};
  return s ?? {};
}

/** A short type expression: `integer (1…2000) = 10`, `Job`, `string[]`, `"crop" | "squash"`. */
function typeOf(raw: Json | undefined, depth = 0): string {
  if (!raw) return 'any';
  if (raw.$ref) return String(raw.$ref).split('/').pop()!;
  const s = raw;
  if (s.anyOf || s.oneOf) return ((s.anyOf ?? s.oneOf) as Json[]).map((x) => typeOf(x, depth + 1)).join(' | ');
  if (s.enum) return (s.enum as unknown[]).map((v) => JSON.stringify(v)).join(' | ');
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.type === 'array') return `${typeOf(s.items, depth + 1)}[]`;
  if (s.contentMediaType) return `binary (${s.contentMediaType})`;
  let t = Array.isArray(s.type) ? s.type.join(' | ') : (s.type ?? (s.properties ? 'object' : 'any'));
  const range = [s.minimum, s.maximum].some((x) => x !== undefined && Math.abs(x) < 1e15) ? ` (${s.minimum ?? ''}…${s.maximum ?? ''})` : '';
  t += range;
  if (s.default !== undefined) t += ` = ${JSON.stringify(s.default)}`;
  return t;
}

function schemaTable(raw: Json | undefined, depth = 0): HTMLElement {
  const s = resolve(raw);
  const name = raw?.$ref ? String(raw.$ref).split('/').pop() : undefined;
  if (!s.properties) {
    if (s.anyOf || s.oneOf) {
      const wrap = h('div', {}, h('p', { class: 'muted', text: 'One of:' }));
      for (const alt of (s.anyOf ?? s.oneOf) as Json[]) wrap.append(schemaTable(alt, depth + 1));
      return wrap;
    }
    return h('p', {}, h('code', { text: name ?? typeOf(s) }));
  }
  const req = new Set((s.required ?? []) as string[]);
  const table = h('table', { class: 'schema' }, h('thead', {}, h('tr', {}, h('th', { text: 'field' }), h('th', { text: 'type' }), h('th', { text: 'description' }))));
  const body = h('tbody');
  for (const [k, v] of Object.entries(s.properties as Record<string, Json>)) {
    const inner = resolve(v);
    const cell = h('td', {}, h('code', { text: typeOf(v) }));
    const nested = inner.type === 'array' ? resolve(inner.items) : inner;
    if (depth < 2 && nested.properties) cell.append(h('details', {}, h('summary', { text: 'fields' }), schemaTable(inner.type === 'array' ? inner.items : v, depth + 1)));
    body.append(h('tr', {}, h('td', {}, h('code', { text: k }), req.has(k) ? h('span', { class: 'req', title: 'required', text: ' *' }) : null), cell, h('td', { text: v.description ?? inner.description ?? '' })));
  }
  table.append(body);
  return h('div', {}, name ? h('p', { class: 'muted' }, 'schema ', h('code', { text: name })) : null, table);
}

function operation(path: string, method: string, op: Json): HTMLElement {
  const id = op.operationId as string;
  const sec = h('section', { class: 'card op', id, 'aria-labelledby': `${id}-h` });
  sec.append(h('h3', { id: `${id}-h` }, h('span', { class: `method m-${method}`, text: method.toUpperCase() }), ' ', h('code', { class: 'path', text: path })));
  sec.append(h('p', { text: op.summary ?? '' }));
  if (op.description) sec.append(h('p', { class: 'muted', text: op.description }));
  const params = (op.parameters ?? []) as Json[];
  if (params.length) {
    const t = h('table', { class: 'schema' }, h('thead', {}, h('tr', {}, h('th', { text: 'parameter' }), h('th', { text: 'in' }), h('th', { text: 'type' }), h('th', { text: 'description' }))));
    const b = h('tbody');
    for (const p of params) b.append(h('tr', {}, h('td', {}, h('code', { text: p.name }), p.required ? h('span', { class: 'req', text: ' *' }) : null), h('td', { text: p.in }), h('td', {}, h('code', { text: typeOf(p.schema) })), h('td', { text: p.description ?? p.schema?.description ?? '' })));
    t.append(b);
    sec.append(h('h4', { text: 'Parameters' }), t);
  }
  if (op.requestBody) {
    sec.append(h('h4', { text: `Request body${op.requestBody.required ? ' (required)' : ''}` }));
    if (op.requestBody.description) sec.append(h('p', { class: 'muted', text: op.requestBody.description }));
    for (const [ct, c] of Object.entries(op.requestBody.content as Record<string, Json>)) {
      sec.append(h('details', { open: ct === 'multipart/form-data' || ct === 'application/json' ? '' : undefined }, h('summary', {}, h('code', { text: ct })), schemaTable(c.schema)));
    }
  }
  sec.append(h('h4', { text: 'Responses' }));
  for (const [status, r] of Object.entries(op.responses as Record<string, Json>)) {
    const cts = Object.keys(r.content ?? {});
    const d = h('details', {}, h('summary', {}, h('span', { class: `status s${status[0]}`, text: status }), ` ${r.description} `, ...cts.map((ct) => h('code', { class: 'ct', text: ct }))));
    for (const [ct, c] of Object.entries((r.content ?? {}) as Record<string, Json>)) if (c.schema && !c.schema.contentMediaType && c.schema.type !== 'string') d.append(h('p', { class: 'muted', text: ct }), schemaTable(c.schema));
    if (r.headers) d.append(h('p', { class: 'muted', text: `Headers: ${Object.keys(r.headers).join(', ')}` }));
    sec.append(d);
  }
  return sec;
}

async function main(): Promise<void> {
  const res = await fetch('/openapi.json');
  const spec = (await res.json()) as Json;
  components = spec.components?.schemas ?? {};
  document.getElementById('api-version')!.textContent = `OpenAPI ${spec.openapi} · version ${spec.info.version} — generated from the route schemas`;
  const ops = document.getElementById('ops')!;
  const toc = document.getElementById('toc')!;
  const tags = (spec.tags ?? []) as { name: string; description?: string }[];
  for (const tag of tags) {
    const items: HTMLElement[] = [];
    const tocList = h('ul');
    for (const [path, item] of Object.entries(spec.paths as Record<string, Json>)) {
      for (const [method, op] of Object.entries(item)) {
        if (!(op.tags as string[]).includes(tag.name)) continue;
        items.push(operation(path, method, op));
        tocList.append(h('li', {}, h('a', { href: `#${op.operationId}` }, h('span', { class: `method m-${method}`, text: method.toUpperCase() }), ' ', path)));
      }
    }
    if (!items.length) continue;
    ops.append(h('h2', { id: `tag-${tag.name}`, text: `${tag.name} — ${tag.description ?? ''}` }), ...items);
    toc.append(h('h2', { class: 'small-h', text: tag.name }), tocList);
  }
  document.body.dataset.ready = 'true';
}

void main().catch((e: unknown) => { document.getElementById('ops')!.append(h('p', { class: 'error', role: 'alert', text: `Could not load /openapi.json: ${String(e)}` })); });
