// The op registry: one rule record per ONNX op type (default domain), gathered from the per-family files in
// ./rules. Adding an op = adding one record to one of those files (docs/autodiff.md, "Adding an op").
import type { NodeProto } from '../proto.js';
import type { OpRule } from './rule.js';
import { constantRules } from './rules/constant.js';
import { convRules } from './rules/conv.js';
import { elementwiseRules } from './rules/elementwise.js';
import { linalgRules } from './rules/linalg.js';
import { normRules } from './rules/norm.js';
import { poolRules } from './rules/pool.js';
import { reduceRules } from './rules/reduce.js';
import { shapeRules } from './rules/shape.js';
import { unaryRules } from './rules/unary.js';

const FAMILIES: Record<string, OpRule>[] = [
  convRules, poolRules, elementwiseRules, unaryRules, normRules, linalgRules, shapeRules, reduceRules, constantRules,
];

function merge(families: Record<string, OpRule>[]): Readonly<Record<string, OpRule>> {
  const all: Record<string, OpRule> = {};
  for (const f of families) {
    for (const [op, rule] of Object.entries(f)) {
      if (all[op]) throw new Error(`autodiff registry: op '${op}' has two rule records`);
      all[op] = rule;
    }
  }
  return Object.freeze(all);
}

/** Every op type the autodiff knows something about, with its rule. */
export const RULES = merge(FAMILIES);

/** The rule of a node (undefined for unknown ops and for other domains). */
export function ruleOf(node: NodeProto): OpRule | undefined {
  if (node.domain && node.domain !== 'ai.onnx') return undefined;
  return Object.hasOwn(RULES, node.opType ?? '') ? RULES[node.opType ?? ''] : undefined;
}
