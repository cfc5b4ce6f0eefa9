import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { configMarkdown } from '../src/config.js';

it('the README configuration table is the one generated from src/config.ts (npm run docs:config)', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const table = readme.split('<!-- config-table:start -->')[1]?.split('<!-- config-table:end -->')[0]?.trim();
  assert.equal(table, configMarkdown());
});
