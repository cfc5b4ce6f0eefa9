// Checkpoint files of the ONNX Runtime trainer: weights and optimizer state (slots and step count) in one file,
// so a run continues exactly where it stopped. Layout: "CVCKPT1\n", a uint32 (LE) header length, a JSON header
// ({ meta, iterations, tensors: [{ key, length }] }) and the float32 data of every tensor in header order.
// Written atomically (temp file + rename).
import { readFileSync } from 'node:fs';
import { writeAtomic } from '../util/fs.js';
import type { TrainerCheckpoint } from './ort-trainable.js';

const MAGIC = 'CVCKPT1\n';

interface Header {
  meta: unknown;
  iterations: number;
  /** `w:<param>` for weights, `o:<param>:<slot>` for optimizer slots. */
  tensors: { key: string; length: number }[];
}

export function saveCheckpoint(path: string, c: TrainerCheckpoint, meta: unknown = {}): void {
  const tensors: [string, Float32Array][] = [
    ...Object.entries(c.weights).map(([k, v]): [string, Float32Array] => [`w:${k}`, v]),
    ...Object.entries(c.optimizer.slots).flatMap(([p, slots]) => Object.entries(slots).map(([s, v]): [string, Float32Array] => [`o:${p}:${s}`, v])),
  ];
  const header: Header = { meta, iterations: c.optimizer.iterations, tensors: tensors.map(([key, v]) => ({ key, length: v.length })) };
  const json = Buffer.from(JSON.stringify(header));
  const pre = Buffer.alloc(MAGIC.length + 4);
  pre.write(MAGIC, 0, 'latin1');
  // Pad the JSON so the float data starts 4-byte aligned.
  const pad = (4 - ((pre.length + json.length) % 4)) % 4;
  pre.writeUInt32LE(json.length + pad, MAGIC.length);
  const body = Buffer.concat([pre, json, Buffer.alloc(pad, 0x20), ...tensors.map(([, v]) => Buffer.from(v.buffer, v.byteOffset, v.byteLength))]);
  writeAtomic(path, body);
}

export function loadCheckpoint(path: string): { checkpoint: TrainerCheckpoint; meta: unknown } {
  const b = readFileSync(path);
  if (b.subarray(0, MAGIC.length).toString('latin1') !== MAGIC) throw new Error(`${path} is not a convserve training checkpoint`);
  const len = b.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4;
  const header = JSON.parse(b.subarray(start, start + len).toString('utf8')) as Header;
  let offset = start + len;
  const checkpoint: TrainerCheckpoint = { weights: {}, optimizer: { iterations: header.iterations, slots: {} } };
  for (const t of header.tensors) {
    const bytes = b.subarray(offset, offset + t.length * 4);
    if (bytes.length !== t.length * 4) throw new Error(`${path} is truncated (tensor ${t.key})`);
    const v = new Float32Array(t.length);
    new Uint8Array(v.buffer).set(bytes);
    offset += t.length * 4;
    if (t.key.startsWith('w:')) checkpoint.weights[t.key.slice(2)] = v;
    else {
      const rest = t.key.slice(2);
      const cut = rest.lastIndexOf(':');
      (checkpoint.optimizer.slots[rest.slice(0, cut)] ??= {})[rest.slice(cut + 1)] = v;
    }
  }
  return { checkpoint, meta: header.meta };
}
