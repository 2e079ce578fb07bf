/**
 * Decodes a TF.js `weightsManifest` + the concatenated shard bytes into named typed arrays,
 * the same way TF.js does (so the ONNX model sees exactly the values TF.js computes with).
 */
import { modelError } from '../../util/errors.js';

export interface WeightQuantization {
  dtype: 'uint8' | 'uint16' | 'float16';
  scale?: number;
  min?: number;
}

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: WeightQuantization;
}

export interface WeightGroup {
  paths: string[];
  weights: WeightSpec[];
}

export interface DecodedWeight {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool';
  data: Float32Array | Int32Array;
}

const STRING_LENGTH_BYTES = 4;

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, size) => product * size, 1);
}

/** Validates the shape of `weightsManifest` and returns it typed. */
export function parseManifest(modelJson: unknown, origin: string): WeightGroup[] {
  const manifest = (modelJson as { weightsManifest?: unknown }).weightsManifest;
  if (manifest === undefined) return [];
  if (!Array.isArray(manifest)) throw modelError('"weightsManifest" must be a list of weight groups', origin);
  return manifest.map((group: unknown, index) => {
    const { paths, weights } = (group ?? {}) as { paths?: unknown; weights?: unknown };
    if (!Array.isArray(paths) || !paths.every((path) => typeof path === 'string') || !Array.isArray(weights)) {
      throw modelError(`weightsManifest[${index}] must have "paths" (strings) and "weights" (a list)`, origin);
    }
    for (const spec of weights as WeightSpec[]) {
      if (typeof spec?.name !== 'string' || !Array.isArray(spec.shape) || typeof spec.dtype !== 'string') {
        throw modelError(`weightsManifest[${index}] has a weight entry without name/shape/dtype: ${JSON.stringify(spec)}`, origin);
      }
    }
    return { paths: paths as string[], weights: weights as WeightSpec[] };
  });
}

/**
 * Bytes a weight occupies in the shards. Strings are length-prefixed, so their size depends on the
 * data; `bytes` (the data from the weight's offset on) is needed for them.
 */
function storedByteLength(spec: WeightSpec, bytes: Uint8Array | undefined, origin: string): number {
  const count = elementCount(spec.shape);
  if (spec.quantization) {
    const sizes = { uint8: 1, uint16: 2, float16: 2 } as const;
    const size = sizes[spec.quantization.dtype];
    if (size === undefined) {
      throw modelError(`weight "${spec.name}" uses quantization dtype "${spec.quantization.dtype}"; supported: uint8, uint16, float16`, origin);
    }
    return count * size;
  }
  switch (spec.dtype) {
    case 'float32':
    case 'int32':
      return count * 4;
    case 'bool':
      return count;
    case 'string': {
      if (!bytes) return Number.NaN;
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      let offset = 0;
      for (let i = 0; i < count; i++) {
        if (offset + STRING_LENGTH_BYTES > bytes.byteLength) return Number.POSITIVE_INFINITY;
        offset += STRING_LENGTH_BYTES + view.getUint32(offset, true);
      }
      return offset;
    }
    default:
      throw modelError(`weight "${spec.name}" has dtype "${spec.dtype}"; supported: float32, int32, bool, string`, origin);
  }
}

/** Bytes a weight group needs, or NaN when it holds strings (whose size only the data tells). */
export function groupByteLength(group: WeightGroup, origin: string): number {
  return group.weights.reduce((total, spec) => total + storedByteLength(spec, undefined, origin), 0);
}

/** IEEE half → float, as TF.js's float16 decoder does (a float16 package could; it is ten lines). */
function halfToFloat(half: number): number {
  const sign = half & 0x8000 ? -1 : 1;
  const exponent = (half >> 10) & 0x1f;
  const fraction = half & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function decodeOne(spec: WeightSpec, bytes: Uint8Array, origin: string): DecodedWeight {
  const count = elementCount(spec.shape);
  const { name, shape } = spec;
  const quantization = spec.quantization;
  // A copy: shard offsets need not be aligned for 16/32-bit views, and the result must own its bytes.
  const own = bytes.slice();
  if (!quantization) {
    switch (spec.dtype) {
      case 'float32':
        return { name, shape, dtype: 'float32', data: new Float32Array(own.buffer, 0, count) };
      case 'int32':
        return { name, shape, dtype: 'int32', data: new Int32Array(own.buffer, 0, count) };
      case 'bool':
        return { name, shape, dtype: 'bool', data: Int32Array.from(own) };
      default:
        throw modelError(`weight "${name}" has dtype "${spec.dtype}", which the converter cannot use`, origin);
    }
  }
  const quantized = quantization.dtype === 'uint8' ? own : new Uint16Array(own.buffer, 0, count);
  if (quantization.dtype === 'float16') {
    if (spec.dtype !== 'float32') throw modelError(`weight "${name}": float16 quantization needs dtype float32, not ${spec.dtype}`, origin);
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = halfToFloat(quantized[i]!);
    return { name, shape, dtype: 'float32', data };
  }
  const { scale, min } = quantization;
  if (typeof scale !== 'number' || typeof min !== 'number') {
    throw modelError(`weight "${name}" is ${quantization.dtype}-quantized but has no numeric "scale" and "min"`, origin);
  }
  // value = q·scale + min, computed in double and rounded once, exactly as TF.js does.
  if (spec.dtype === 'float32') {
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = quantized[i]! * scale + min;
    return { name, shape, dtype: 'float32', data };
  }
  if (spec.dtype === 'int32') {
    const data = new Int32Array(count);
    for (let i = 0; i < count; i++) data[i] = Math.round(quantized[i]! * scale + min);
    return { name, shape, dtype: 'int32', data };
  }
  throw modelError(`weight "${name}": quantized weights must be float32 or int32, not ${spec.dtype}`, origin);
}

/**
 * All weights of the manifest by name. String weights (only found in graph models' lookup tables)
 * are skipped over; asking for one later reports it as missing.
 */
export function decodeWeights(groups: WeightGroup[], weightData: ArrayBuffer, origin: string): Map<string, DecodedWeight> {
  const all = new Uint8Array(weightData);
  const weights = new Map<string, DecodedWeight>();
  let offset = 0;
  for (const spec of groups.flatMap((group) => group.weights)) {
    const length = storedByteLength(spec, all.subarray(offset), origin);
    if (!(offset + length <= all.byteLength)) {
      throw modelError(
        `weight data ends early: weight "${spec.name}" needs bytes ${offset}..${offset + length} but there are only ${all.byteLength} bytes`,
        origin,
      );
    }
    if (spec.dtype !== 'string') weights.set(spec.name, decodeOne(spec, all.subarray(offset, offset + length), origin));
    offset += length;
  }
  return weights;
}
