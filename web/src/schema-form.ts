// The Advanced fold of a task: every parameter of the operation, generated from /openapi.json (which is
// generated from the server's zod schemas). Fields start at the server's default; only values that differ are
// sent, so "copy as curl" shows exactly what was chosen. Bounds become input attributes, not hint text.
import { api } from './api.js';
import { type Json, field, h } from './dom.js';

let spec: Promise<Json> | undefined;
export const openapi = (): Promise<Json> => (spec ??= api('/openapi.json'));

/** The multipart form fields (not the image parts) of `POST path` in the OpenAPI description. */
export async function formParams(path: string): Promise<Record<string, Json>> {
  const doc = await openapi();
  const op = doc.paths?.[path]?.post as Json | undefined;
  const body = op?.requestBody?.content?.['multipart/form-data']?.schema as Json | undefined;
  const out: Record<string, Json> = {};
  for (const [k, v] of Object.entries((body?.properties ?? {}) as Record<string, Json>)) {
    if (v.contentMediaType?.startsWith('image/') || v.format === 'binary' || v.type === 'array') continue;
    out[k] = v;
  }
  // Query parameters of the operation (e.g. /v1/classify?top=) are fields too.
  for (const p of (op?.parameters ?? []) as Json[]) if (p.in === 'query') out[p.name] = { ...p.schema, description: p.description ?? p.schema?.description };
  return out;
}

const label = (name: string) => name.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());

function control(id: string, name: string, schema: Json): HTMLInputElement | HTMLSelectElement {
  const opts = (schema.anyOf ?? schema.oneOf) as Json[] | undefined;
  const base = opts?.find((o) => o.type && o.type !== 'null' && !('const' in o)) ?? schema;
  const def = schema.default;
  const shown = def === undefined ? '' : typeof def === 'string' ? def : JSON.stringify(def);
  let input: HTMLInputElement | HTMLSelectElement;
  if (base.enum) {
    input = h('select', { id, name }, ...(def === undefined ? [h('option', { value: '', text: 'server default' })] : []), ...(base.enum as unknown[]).map((v) => h('option', { value: String(v), text: String(v) })));
  } else if (base.type === 'boolean') {
    input = h('input', { id, name, type: 'checkbox', checked: def === true });
  } else if ((base.type === 'integer' || base.type === 'number') && !opts?.some((o) => 'const' in o)) {
    input = h('input', { id, name, type: 'number', step: base.type === 'integer' ? '1' : 'any', min: base.minimum !== undefined ? String(base.minimum) : undefined, max: base.maximum !== undefined && base.maximum < 1e9 ? String(base.maximum) : undefined, placeholder: def === undefined ? 'server default' : undefined, class: 'narrow' });
  } else {
    input = h('input', { id, name, type: 'text', placeholder: def === undefined ? 'server default' : undefined });
  }
  if (input instanceof HTMLInputElement && input.type === 'checkbox') input.dataset.default = String(def === true);
  else { input.value = shown; input.dataset.default = shown; }
  return input;
}

export interface ParamForm {
  fold: HTMLDetailsElement;
  /** The control of a parameter (main controls and presets write into these). */
  get(name: string): HTMLInputElement | HTMLSelectElement | undefined;
  set(name: string, value: string | number | boolean): void;
  /** The parameters that differ from the server's defaults, in schema order. */
  values(): [string, string][];
  /** Puts every parameter back to the server's default. */
  reset(): void;
}

export function paramForm(prefix: string, params: Record<string, Json>, skip: string[] = []): ParamForm {
  const controls = new Map<string, HTMLInputElement | HTMLSelectElement>();
  const grid = h('div', { class: 'params' });
  for (const [name, schema] of Object.entries(params)) {
    const id = `${prefix}-p-${name}`;
    const c = control(id, name, schema);
    controls.set(name, c);
    if (skip.includes(name)) continue;
    grid.append(field(id, label(name), c, typeof schema.description === 'string' ? schema.description : undefined));
  }
  const fold = h('details', { class: 'advanced' }, h('summary', { text: 'Advanced: all parameters' }), grid);
  const isDefault = (c: HTMLInputElement | HTMLSelectElement) => (c instanceof HTMLInputElement && c.type === 'checkbox' ? String(c.checked) === c.dataset.default : c.value === c.dataset.default);
  return {
    fold,
    get: (name) => controls.get(name),
    set(name, value) {
      const c = controls.get(name);
      if (!c) return;
      if (c instanceof HTMLInputElement && c.type === 'checkbox') c.checked = value === true || value === 'true';
      else c.value = String(value);
      c.dispatchEvent(new Event('change'));
    },
    values: () => [...controls].filter(([, c]) => !isDefault(c) && (c.type === 'checkbox' || c.value !== '')).map(([n, c]) => [n, c instanceof HTMLInputElement && c.type === 'checkbox' ? String(c.checked) : c.value]),
    reset() { for (const c of controls.values()) { if (c instanceof HTMLInputElement && c.type === 'checkbox') c.checked = c.dataset.default === 'true'; else c.value = c.dataset.default ?? ''; } },
  };
}
