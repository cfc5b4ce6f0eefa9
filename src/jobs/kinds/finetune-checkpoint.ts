// A finetune job's checkpoint: the session's snapshot after an epoch (src/train/finetune-session.ts) as JSON plus
// float buffers — the head's weights and Adam's slots (`w:` / `o:`), the best epoch's weights (`b:`) and the
// cached features of the base (`f:val`, `f:train`), so a resume neither retrains an epoch nor recomputes features.
import { z } from 'zod';
import type { SessionSnapshot } from '../../train/finetune-session.js';
import type { Extracted } from '../../train/frozen-base.js';
import { bytesOf, floatsOf } from '../../util/float-bytes.js';
import type { SerializedState } from '../../util/serialized-state.js';
import { checkCheckpoint, invalidCheckpoint } from '../checkpoint.js';

const lengths = z.record(z.string(), z.number().int().min(0));
const shape = z.array(z.number().int().min(1)).min(1);
const features = z.object({ shape, count: z.number().int().min(1) });

const FinetuneCheckpoint = z.object({
  epochs: z.number().int().min(0),
  global_step: z.number().int().min(0),
  stopped: z.boolean(),
  from_map: z.boolean(),
  history: z.array(z.object({
    epoch: z.number(), stage: z.literal(1), stage_epoch: z.number(), loss: z.number(), acc: z.number(), val_loss: z.number(), val_acc: z.number(),
    lr: z.number(), seconds: z.number(), feature_seconds: z.number().optional(),
  })),
  first_extraction: z.object({ images: z.number(), seconds: z.number() }),
  optimizer_iterations: z.number().int().min(0),
  weights: lengths,
  slots: z.record(z.string(), lengths),
  best: z.object({ epoch: z.number().int().min(1), step: z.number().int().min(0), loss: z.number(), accuracy: z.number() }).nullable(),
  features: z.object({ val: features, train: features.optional() }),
});

const F32 = Float32Array.BYTES_PER_ELEMENT;
const lengthsOf = (r: Record<string, Float32Array>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.length]));

export function serializeSession(s: SessionSnapshot): SerializedState {
  const buffers: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(s.trainer.weights)) buffers[`w:${k}`] = bytesOf(v);
  for (const [p, slots] of Object.entries(s.trainer.optimizer.slots)) for (const [slot, v] of Object.entries(slots)) buffers[`o:${p}:${slot}`] = bytesOf(v);
  for (const [k, v] of Object.entries(s.best?.weights ?? {})) buffers[`b:${k}`] = bytesOf(v);
  buffers['f:val'] = bytesOf(s.features.val.data);
  if (s.features.train) buffers['f:train'] = bytesOf(s.features.train.data);
  const feat = (e: Extracted) => ({ shape: e.shape, count: e.data.length / e.shape.reduce((a, b) => a * b, 1) });
  return {
    json: {
      epochs: s.epochs, global_step: s.globalStep, stopped: s.stopped, from_map: s.fromMap, history: s.history, first_extraction: s.firstExtraction,
      optimizer_iterations: s.trainer.optimizer.iterations, weights: lengthsOf(s.trainer.weights),
      slots: Object.fromEntries(Object.entries(s.trainer.optimizer.slots).map(([p, slots]) => [p, lengthsOf(slots)])),
      best: s.best ? { epoch: s.best.epoch, step: s.best.step, loss: s.best.loss, accuracy: s.best.accuracy } : null,
      features: { val: feat(s.features.val), ...(s.features.train ? { train: feat(s.features.train) } : {}) },
    },
    buffers,
  };
}

/** The snapshot in `data`; `expect` holds what this job's dataset implies (a foreign checkpoint is refused). */
export function deserializeSession(data: SerializedState, expect: { val: number; train: number; augment: boolean }): SessionSnapshot {
  const ckpt = checkCheckpoint('finetune', FinetuneCheckpoint, data);
  const j = ckpt.json;
  const floats = (name: string, n: number) => floatsOf(ckpt.buffer(name, n * F32));
  const extracted = (name: string, f: { shape: number[]; count: number }, want: number): Extracted => {
    if (f.count !== want) throw invalidCheckpoint('finetune', `it holds features of ${f.count} images for ${want}`);
    return { shape: f.shape, data: floats(name, f.count * f.shape.reduce((a, b) => a * b, 1)) };
  };
  if (!expect.augment && !j.features.train) throw invalidCheckpoint('finetune', 'the cached training features are missing');
  const weights = Object.fromEntries(Object.entries(j.weights).map(([k, n]) => [k, floats(`w:${k}`, n)]));
  return {
    epochs: j.epochs, globalStep: j.global_step, stopped: j.stopped, fromMap: j.from_map, history: j.history, firstExtraction: j.first_extraction,
    trainer: {
      weights,
      optimizer: { iterations: j.optimizer_iterations, slots: Object.fromEntries(Object.entries(j.slots).map(([p, slots]) => [p, Object.fromEntries(Object.entries(slots).map(([slot, n]) => [slot, floats(`o:${p}:${slot}`, n)]))])) },
    },
    best: j.best ? { ...j.best, weights: Object.fromEntries(Object.entries(j.weights).map(([k, n]) => [k, floats(`b:${k}`, n)])) } : null,
    features: {
      val: extracted('f:val', j.features.val, expect.val),
      ...(j.features.train && !expect.augment ? { train: extracted('f:train', j.features.train, expect.train) } : {}),
    },
  };
}
