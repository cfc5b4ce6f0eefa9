// Regenerates the configuration table in README.md from src/config.ts (run with node --import tsx).
import { readFileSync, writeFileSync } from 'node:fs';
import { configMarkdown } from '../src/config.ts';
const path = new URL('../README.md', import.meta.url);
const readme = readFileSync(path, 'utf8');
const start = '<!-- config-table:start -->', end = '<!-- config-table:end -->';
const i = readme.indexOf(start), j = readme.indexOf(end);
if (i < 0 || j < 0) throw new Error('README.md has no config-table markers');
writeFileSync(path, readme.slice(0, i + start.length) + '\n' + configMarkdown() + '\n' + readme.slice(j));
console.log('README.md configuration table updated');
