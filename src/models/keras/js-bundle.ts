// tfjs models shipped inside JavaScript (the `nsfwjs` package): browserify UMD bundles whose single module is
// `<m>.exports = <literal>` — the model.json object as a minified object literal, or a shard as a base64 string.
// The literal is parsed here as data; the bundle's code is never executed. Anything but that exact shape (more
// modules, statements, calls inside the literal) is refused.
import { KerasImportError } from './errors.js';

/** Start of browserify's module 1 when its body is a single exports assignment: `{1:[function(a,b,c){b.exports=`. */
const MODULE_START = /\{1:\[function\(([\w$]+),([\w$]+),([\w$]+)\)\{\2\.exports=/;
/** What must follow the literal: end of module 1 (no dependencies), the module map, and the entry list [1]. */
const MODULE_END = /^;?\},\{\}\]\},\{\},\[1\]\)\(1\)\}\);?\s*$/;

/** Whether `text` looks like such a bundle (cheap; for format detection). */
export function isExportBundle(text: string): boolean {
  return text.startsWith('!function(') && MODULE_START.test(text);
}

/** The exported literal's value. */
export function bundleExport(text: string, label: string): unknown {
  const start = MODULE_START.exec(text);
  if (!text.startsWith('!function(') || !start) {
    throw new KerasImportError('unknown-format', `${label} is JavaScript but not a bundled tfjs model (expected a browserify bundle exporting one literal)`, label);
  }
  const parser = new LiteralParser(text, start.index + start[0].length, label);
  const value = parser.value();
  if (!MODULE_END.test(text.slice(parser.pos))) {
    throw new KerasImportError('corrupt', `${label}: unexpected code after the exported literal at offset ${parser.pos}`, label);
  }
  return value;
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', v: '\v', '0': '\0' };

/** A JSON superset parser for minified object literals: unquoted keys, single quotes, `!0`/`!1`, `.5`, `void 0`. */
class LiteralParser {
  constructor(private readonly s: string, public pos: number, private readonly label: string) {}

  private fail(what: string): never {
    const snippet = this.s.slice(this.pos, this.pos + 24);
    throw new KerasImportError('corrupt', `${this.label}: ${what} at offset ${this.pos} (near ${JSON.stringify(snippet)})`, this.label);
  }

  private skipSpace(): void {
    while (/\s/.test(this.s[this.pos] ?? '')) this.pos++;
  }

  private eat(token: string): boolean {
    this.skipSpace();
    if (!this.s.startsWith(token, this.pos)) return false;
    this.pos += token.length;
    return true;
  }

  value(): unknown {
    this.skipSpace();
    const c = this.s[this.pos];
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"' || c === "'") return this.string();
    for (const [token, v] of [['!0', true], ['!1', false], ['true', true], ['false', false], ['null', null], ['void 0', null]] as const) {
      if (this.s.startsWith(token, this.pos) && !/[\w$]/.test(this.s[this.pos + token.length] ?? '')) {
        this.pos += token.length;
        return v;
      }
    }
    return this.number();
  }

  private object(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.pos++; // {
    while (!this.eat('}')) {
      this.skipSpace();
      const c = this.s[this.pos];
      const key = c === '"' || c === "'" ? this.string() : this.identifierOrNumber();
      if (!this.eat(':')) this.fail("expected ':'");
      Object.defineProperty(out, key, { value: this.value(), enumerable: true, writable: true, configurable: true });
      if (this.eat(',')) continue;
      this.skipSpace();
      if (this.s[this.pos] !== '}') this.fail("expected ',' or '}'");
    }
    return out;
  }

  private array(): unknown[] {
    const out: unknown[] = [];
    this.pos++; // [
    while (!this.eat(']')) {
      out.push(this.value());
      if (this.eat(',')) continue;
      this.skipSpace();
      if (this.s[this.pos] !== ']') this.fail("expected ',' or ']'");
    }
    return out;
  }

  private identifierOrNumber(): string {
    const m = /^[\w$]+/.exec(this.s.slice(this.pos, this.pos + 256));
    if (!m) this.fail('expected a property name');
    this.pos += m[0].length;
    return /^\d/.test(m[0]) ? String(Number(m[0])) : m[0];
  }

  private number(): number {
    const m = /^-?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)/.exec(this.s.slice(this.pos, this.pos + 64));
    if (!m) this.fail('expected a literal value');
    this.pos += m[0].length;
    return Number(m[0]);
  }

  private string(): string {
    const quote = this.s[this.pos]!;
    let out = '';
    for (let i = this.pos + 1; i < this.s.length; i++) {
      const c = this.s[i]!;
      if (c === quote) {
        this.pos = i + 1;
        return out;
      }
      if (c !== '\\') {
        // Copy the run up to the next quote or escape at once (base64 shards are megabytes long).
        const q = this.s.indexOf(quote, i);
        const end = q < 0 ? this.s.length : q;
        const escape = this.s.slice(i, end).indexOf('\\');
        const j = escape < 0 ? end : i + escape;
        out += this.s.slice(i, j);
        i = j - 1;
        continue;
      }
      const e = this.s[++i];
      if (e === 'u' || e === 'x') {
        const len = e === 'u' ? 4 : 2;
        const hex = this.s.slice(i + 1, i + 1 + len);
        if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) this.fail('bad escape in string');
        out += String.fromCharCode(Number.parseInt(hex, 16));
        i += len;
      } else {
        out += ESCAPES[e ?? ''] ?? e ?? '';
      }
    }
    return this.fail('unterminated string');
  }
}
