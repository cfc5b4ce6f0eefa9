// Values that are constants for the autodiff: sizes and shapes, generated tensors, indices. Their static
// values are tracked where cheap (a Shape of fully known dims, a Constant) so rules can read them.
import type { TensorProto } from '../../proto.js';
import type { OpRule } from '../rule.js';
import type { InferArgs } from '../static.js';

const inferConstant = ({ a, set, setConstant, setInts, setFloats }: InferArgs): void => {
  const v = a.value as TensorProto | undefined;
  if (v) setConstant(0, v);
  else if (a.value_int !== undefined) { set(0, []); setInts(0, [Number(a.value_int)]); }
  else if (a.value_ints !== undefined) { const vs = a.value_ints as number[]; set(0, [vs.length]); setInts(0, vs); }
  else if (a.value_float !== undefined) { set(0, []); setFloats(0, [Number(a.value_float)]); }
};

const inferShape = ({ a, dims, set, setInts }: InferArgs): void => {
  const x = dims(0);
  if (!x) return;
  const r = x.length;
  const norm = (v: number): number => (v < 0 ? v + r : v);
  const st = a.start === undefined ? 0 : norm(Math.max(Math.min(Number(a.start), r), -r));
  const en = a.end === undefined ? r : Math.min(norm(Math.max(Number(a.end), -r)), r);
  set(0, [Math.max(en - st, 0)]);
  if (st === 0 && en === r && x.every((v) => typeof v === 'number')) setInts(0, x as number[]);
};

const inferConstantOfShape = ({ dims, ints, set, fresh }: InferArgs): void => {
  const s = ints(0);
  if (s) { set(0, s); return; }
  const sd = dims(0);
  if (sd && typeof sd[0] === 'number') set(0, Array.from({ length: sd[0] }, () => fresh()));
};

const intResult: OpRule = { types: 'int', grad: 'none' };
const generated: OpRule = { grad: 'none' };

export const constantRules: Record<string, OpRule> = {
  Constant: {
    types: (a) => [a.value_int !== undefined || a.value_ints !== undefined ? 'int' : 'float'],
    infer: inferConstant, grad: 'none',
  },
  Shape: { types: 'int', infer: inferShape, grad: 'none' },
  Size: { types: 'int', infer: ({ set }) => set(0, []), grad: 'none' },
  ConstantOfShape: { infer: inferConstantOfShape, grad: 'none' },
  Range: intResult, NonZero: intResult, ArgMax: intResult, ArgMin: intResult,
  EyeLike: generated, RandomNormalLike: generated, RandomUniformLike: generated,
  // TopK's values would need a scatter VJP (not supported); its indices output is an integer constant.
  TopK: { types: () => ['float', 'int'] },
};
