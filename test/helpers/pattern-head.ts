/**
 * A linear head with weights from the reference scripts' pattern() (exact in any language), so that
 * tools/*.py and the tests differentiate the same classifier without a trained head.bin.
 */
import type { HeadState } from '../../src/heads/head.js';

/** ((i·7919 + 13) mod 2003)/1001.5 − 1, in float64, then float32: tools/explain-torch-reference.py's pattern(). */
export function pattern(count: number, scale = 1, offset = 0): Float32Array {
  return Float32Array.from({ length: count }, (_, k) => ((((k + offset) * 7919 + 13) % 2003) / 1001.5 - 1) * scale);
}

export const PATTERN_HEAD = { classes: 2, scale: 0.1, offset: 5 };

export function patternHead(dim: number): HeadState {
  const { classes, scale, offset } = PATTERN_HEAD;
  return {
    type: 'linear',
    config: { dim, numClasses: classes, standardize: false },
    tensors: {
      weight: { shape: [classes, dim], data: pattern(classes * dim, scale, offset) },
      bias: { shape: [classes], data: new Float32Array(classes) },
    },
  };
}
