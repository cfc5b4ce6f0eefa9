// Float32Array ↔ Buffer for checkpoints (job state, optimiser state) that store float tensors as bytes.

/** The bytes of `a` (a view, no copy). */
export function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** The floats in `b`, copied so the result is 4-byte aligned whatever `b`'s offset in its pool. */
export function floatsOf(b: Buffer): Float32Array {
  const copy = new Uint8Array(b);
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}
