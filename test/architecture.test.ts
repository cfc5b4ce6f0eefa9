// The architecture rules of src/, read from the code itself (CONTRIBUTING.md explains them):
// 1. imports only point DOWN the layers (same layer allowed): fronts → core → jobs → ops/train →
//    models/onnx/engine/image → util;
// 2. no import cycles (type-only imports count: a cycle of types is still two modules that cannot be read apart);
// 3. no source file over MAX_LINES lines, except the data tables in DATA_TABLES.
// The graph is read with the TypeScript compiler's parser: static imports, `export … from`, dynamic `import()`,
// `import('…')` type references, and worker/child modules started by `new URL('./x.js', import.meta.url)`.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';

const SRC = join(import.meta.dirname, '..', 'src');
const MAX_LINES = 400;
/** Files allowed over MAX_LINES because they are data, not logic (path relative to src/ → what the data is). */
const DATA_TABLES: ReadonlyMap<string, string> = new Map<string, string>([]);

/** Layer of a file (path relative to src/, '/' separators), 0 = top. Order matters: first match wins. */
const LAYERS: ReadonlyArray<{ layer: number; name: string; test: (path: string) => boolean }> = [
  { layer: 0, name: 'fronts', test: (p) => /^(server|cli|bench)\//.test(p) || p === 'index.ts' },
  { layer: 1, name: 'core', test: (p) => p.startsWith('app/') },
  { layer: 2, name: 'jobs', test: (p) => p.startsWith('jobs/') },
  { layer: 3, name: 'ops/train', test: (p) => /^(ops|train)\//.test(p) },
  { layer: 4, name: 'models/onnx/engine/image', test: (p) => /^(models|onnx|engine|image)\//.test(p) },
  { layer: 5, name: 'util', test: (p) => p.startsWith('util/') || p === 'config.ts' },
];

type EdgeKind = 'import' | 'type import' | 'dynamic import' | 'module URL';
interface Edge { from: string; to: string; line: number; kind: EdgeKind }

function layerOf(path: string): { layer: number; name: string } | undefined {
  return LAYERS.find((l) => l.test(path));
}

function sourceFiles(root: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(root)) {
    const full = join(root, name);
    if (statSync(full).isDirectory()) out.push(...sourceFiles(full));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(full);
  }
  return out.sort();
}

/** A relative specifier ('./x.js', '../y/index.js', './z') to the .ts file it means, if it is one of ours. */
function resolveSpecifier(fromFile: string, specifier: string, files: ReadonlySet<string>): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const base = resolve(dirname(fromFile), specifier);
  const candidates = [base.replace(/\.(m|c)?js$/, '.$1ts'), base + '.ts', join(base, 'index.ts'), base];
  return candidates.find((c) => files.has(c));
}

function edgesOf(file: string, files: ReadonlySet<string>, root: string): Edge[] {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const edges: Edge[] = [];
  const add = (spec: ts.Node | undefined, kind: EdgeKind) => {
    if (!spec || !ts.isStringLiteralLike(spec)) return;
    const target = resolveSpecifier(file, spec.text, files);
    if (target) edges.push({ from: rel(root, file), to: rel(root, target), line: sf.getLineAndCharacterOfPosition(spec.getStart()).line + 1, kind });
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node)) add(node.moduleSpecifier, node.importClause?.isTypeOnly ? 'type import' : 'import');
    else if (ts.isExportDeclaration(node)) add(node.moduleSpecifier, node.isTypeOnly ? 'type import' : 'import');
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node.moduleReference.expression, 'import');
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal, 'type import');
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0], 'dynamic import');
    else if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'URL' && isImportMetaUrl(node.arguments?.[1])) add(node.arguments?.[0], 'module URL');
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return edges;
}

function isImportMetaUrl(node: ts.Node | undefined): boolean {
  return !!node && ts.isPropertyAccessExpression(node) && ts.isMetaProperty(node.expression) && node.expression.keywordToken === ts.SyntaxKind.ImportKeyword && node.name.text === 'url';
}

function rel(root: string, file: string): string {
  return relative(root, file).split(sep).join('/');
}

/** Strongly connected components with more than one file (or a file importing itself), each as one cycle path. */
function cycles(nodes: readonly string[], edges: readonly Edge[]): string[][] {
  const next = new Map<string, string[]>(nodes.map((n) => [n, []]));
  for (const e of edges) if (e.kind !== 'module URL') next.get(e.from)!.push(e.to);
  // Tarjan's algorithm.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const connect = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v)!) {
      if (!index.has(w)) { connect(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do { w = stack.pop()!; onStack.delete(w); comp.push(w); } while (w !== v);
      if (comp.length > 1 || next.get(v)!.includes(v)) components.push(comp);
    }
  };
  for (const n of nodes) if (!index.has(n)) connect(n);
  // One concrete cycle per component: the shortest way from its first file back to itself, inside the component.
  return components.map((comp) => {
    const inComp = new Set(comp);
    const start = [...comp].sort()[0]!;
    const from = new Map<string, string>();
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      const v = queue[i]!;
      for (const w of next.get(v)!) {
        if (!inComp.has(w)) continue;
        if (w === start) { const path = [v]; for (let u = v; u !== start; ) { u = from.get(u)!; path.unshift(u); } return [...path, start]; }
        if (!from.has(w)) { from.set(w, v); queue.push(w); }
      }
    }
    return [start, start];
  });
}

interface Report { unlayered: string[]; upward: string[]; cycles: string[]; oversized: string[]; staleAllowList: string[] }

export function checkArchitecture(root: string, dataTables: ReadonlyMap<string, string> = DATA_TABLES): Report {
  const files = sourceFiles(root);
  const fileSet = new Set(files);
  const nodes = files.map((f) => rel(root, f));
  const edges = files.flatMap((f) => edgesOf(f, fileSet, root));
  const unlayered = nodes.filter((n) => !layerOf(n)).map((n) => `${n} belongs to no layer (add its folder to the layer table)`);
  const upward = edges.flatMap((e) => {
    const a = layerOf(e.from);
    const b = layerOf(e.to);
    if (!a || !b || b.layer >= a.layer) return [];
    return [`${e.from}:${e.line} (${a.name}, layer ${a.layer}) → ${e.to} (${b.name}, layer ${b.layer}) [${e.kind}]`];
  });
  const lineCount = (f: string) => readFileSync(join(root, f), 'utf8').replace(/\n$/, '').split('\n').length;
  const oversized = nodes.filter((n) => !dataTables.has(n) && lineCount(n) > MAX_LINES).map((n) => `${n}: ${lineCount(n)} lines`);
  const staleAllowList = [...dataTables.keys()].filter((n) => !fileSet.has(join(root, n)) || lineCount(n) <= MAX_LINES)
    .map((n) => `${n} is allowed over ${MAX_LINES} lines but ${fileSet.has(join(root, n)) ? 'no longer is' : 'does not exist'}: remove it from DATA_TABLES`);
  return { unlayered, upward, cycles: cycles(nodes, edges).map((c) => c.join(' → ')), oversized, staleAllowList };
}

/** Fails with one line per violation (and nothing else), so the failure reads as a to-do list. */
function assertNone(title: string, lines: readonly string[]): void {
  if (lines.length > 0) assert.fail(`${lines.length} ${title}:\n  ${lines.join('\n  ')}`);
}

describe('architecture of src/', () => {
  const report = checkArchitecture(SRC);

  it('every source file belongs to a layer', () => {
    assertNone('files outside the layer table', report.unlayered);
  });

  it('imports only point down the layers (fronts → core → jobs → ops/train → models/onnx/engine/image → util)', () => {
    assertNone('upward imports', report.upward);
  });

  it('there are no import cycles', () => {
    assertNone('import cycles', report.cycles);
  });

  it(`no source file is over ${MAX_LINES} lines except the listed data tables`, () => {
    assertNone('stale data-table entries', report.staleAllowList);
    assertNone(`files over ${MAX_LINES} lines`, report.oversized);
  });
});

describe('the architecture checker itself', () => {
  it('finds upward imports of every form, cycles, unlayered and oversized files in a small tree', () => {
    const root = mkdtempSync(join(tmpdir(), 'convserve-arch-'));
    const write = (path: string, text: string) => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    };
    write('util/a.ts', "import { b } from '../models/b.js';\nexport const a = 1;\n");
    write('models/b.ts', "export type { S } from '../server/s.js';\nexport const b = 2;\n");
    write('server/s.ts', "import { a } from '../util/a.js';\nimport { o } from '../ops/o.js';\nexport type S = number;\n");
    write('ops/o.ts', "export const o = () => import('../jobs/j.js');\nexport const w = new URL('../cli/w.js', import.meta.url);\n");
    write('jobs/j.ts', "let t: import('../app/core.js').T;\nexport const j = t;\n");
    write('app/core.ts', "export type T = 1;\n");
    write('cli/w.ts', "export {};\n");
    write('ops/self.ts', "import './self.js';\n");
    write('misc/loose.ts', "export {};\n");
    write('models/table.ts', 'export const rows = [\n' + '  0,\n'.repeat(MAX_LINES) + '];\n');
    write('models/small.ts', 'export const small = 0;\n');

    const r = checkArchitecture(root, new Map([['models/small.ts', 'not data any more'], ['models/gone.ts', 'deleted']]));
    assert.deepEqual(r.unlayered, ['misc/loose.ts belongs to no layer (add its folder to the layer table)']);
    assert.deepEqual(r.upward, [
      'jobs/j.ts:1 (jobs, layer 2) → app/core.ts (core, layer 1) [type import]',
      'models/b.ts:1 (models/onnx/engine/image, layer 4) → server/s.ts (fronts, layer 0) [type import]',
      'ops/o.ts:1 (ops/train, layer 3) → jobs/j.ts (jobs, layer 2) [dynamic import]',
      'ops/o.ts:2 (ops/train, layer 3) → cli/w.ts (fronts, layer 0) [module URL]',
      'util/a.ts:1 (util, layer 5) → models/b.ts (models/onnx/engine/image, layer 4) [import]',
    ]);
    assert.deepEqual(r.cycles.sort(), ['models/b.ts → server/s.ts → util/a.ts → models/b.ts', 'ops/self.ts → ops/self.ts']);
    assert.deepEqual(r.oversized, [`models/table.ts: ${MAX_LINES + 2} lines`]);
    assert.equal(r.staleAllowList.length, 2);
    assert.match(r.staleAllowList[0]!, /^models\/small\.ts .* no longer is/);
    assert.match(r.staleAllowList[1]!, /^models\/gone\.ts .* does not exist/);
  });
});
