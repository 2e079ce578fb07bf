import { describe, expect, it } from 'vitest';
import { AdamW } from '../src/train/adamw.js';
import { makeSchedule } from '../src/train/schedule.js';

describe('learning-rate schedules', () => {
  it('cosine with warmup: linear ramp, then ½(1 + cos(π·t)) over the remaining steps', () => {
    // 10 steps, warmup 0.2 → 2 warmup steps: lr = (s+1)/2, then t = (s − 2)/8
    const lr = makeSchedule('cosine', 1, 10, 0.2);
    expect(lr(0)).toBe(0.5);
    expect(lr(1)).toBe(1);
    expect(lr(2)).toBe(1); // t = 0
    expect(lr(3)).toBeCloseTo(0.9619397662556434, 15); // ½(1 + cos(π/8)) = ½ + √(2+√2)/4
    expect(lr(6)).toBeCloseTo(0.5, 15); // t = ½
    expect(lr(9)).toBeCloseTo(0.03806023374435663, 15); // ½(1 + cos(7π/8))
  });

  it('cosine without warmup', () => {
    const lr = makeSchedule('cosine', 0.01, 4, 0);
    expect(lr(0)).toBe(0.01);
    expect(lr(1)).toBeCloseTo(0.01 * (0.5 + Math.SQRT2 / 4), 15); // ½(1 + cos(π/4))
    expect(lr(2)).toBeCloseTo(0.005, 15);
    expect(lr(3)).toBeCloseTo(0.01 * (0.5 - Math.SQRT2 / 4), 15);
  });

  it('one-cycle: cosine rise from peak/25, cosine fall to peak/25/1e4 (torch OneCycleLR)', () => {
    // 10 steps, 30% warmup: the peak is at step 0.3·10 − 1 = 2, the end at step 9.
    const lr = makeSchedule('one-cycle', 1, 10, 0.3);
    expect(lr(0)).toBeCloseTo(0.04, 15);
    expect(lr(1)).toBeCloseTo(0.52, 15); // 1 + (0.04 − 1)/2·(1 + cos(π/2))
    expect(lr(2)).toBe(1);
    expect(lr(3)).toBeCloseTo(0.9504846320134737, 15); // 4e-6 + (1 − 4e-6)/2·(1 + cos(π/7))
    expect(lr(5)).toBeCloseTo(0.6112620219362893, 15); // … cos(3π/7)
    expect(lr(9)).toBeCloseTo(4e-6, 15);
  });

  it('constant', () => {
    const lr = makeSchedule('constant', 3e-3, 5, 0.5);
    expect([0, 1, 2, 3, 4].map(lr)).toEqual([3e-3, 3e-3, 3e-3, 3e-3, 3e-3]);
  });
});

describe('AdamW', () => {
  it('matches two steps computed by hand (decoupled decay on weights only, bias correction)', () => {
    // params [w, b], decayEnd 1: only w is decayed. lr 0.1, λ 0.01, β = (0.9, 0.999), ε = 1e-8.
    const params = Float64Array.from([1, 1]);
    const adam = new AdamW(2, 1, 0.01);
    // step 1, g = 0.5: m = 0.05, v = 0.00025, m̂ = 0.05/0.1 = 0.5, v̂ = 0.00025/0.001 = 0.25
    //   w = 1·(1 − 0.1·0.01) − 0.1·0.5/(√0.25 + 1e-8) = 0.999 − 0.099999998 = 0.899000002
    //   b = 1 − 0.099999998 = 0.900000002
    adam.step(params, Float64Array.from([0.5, 0.5]), 0.1);
    expect(params[0]).toBeCloseTo(0.899000002, 15);
    expect(params[1]).toBeCloseTo(0.900000002, 15);
    // step 2, g = −0.5: m = 0.045 − 0.05 = −0.005, v = 0.00024975 + 0.00025 = 0.00049975
    //   m̂ = −0.005/0.19, v̂ = 0.00049975/0.001999 = 0.25
    //   w = 0.899000002·0.999 + 0.1·(0.005/0.19)/(0.5 + 1e-8)
    adam.step(params, Float64Array.from([-0.5, -0.5]), 0.1);
    const correction = (0.1 * (0.005 / 0.19)) / (0.5 + 1e-8);
    expect(params[0]).toBeCloseTo(0.899000002 * 0.999 + correction, 15);
    expect(params[1]).toBeCloseTo(0.900000002 + correction, 15);
  });
});
