// IEEE 754 half precision → float32 (tfjs `float16` quantization; HDF5 '<e' datasets).

/** Decodes one binary16 value given as its 16 bits. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

export function decodeFloat16(bits: Uint16Array): Float32Array {
  return Float32Array.from(bits, halfToFloat);
}
