import { describe, expect, it } from 'vitest';
import { minimizeLbfgs } from '../src/train/lbfgs.js';

describe('minimizeLbfgs', () => {
  it('minimises the Rosenbrock function from the classic start (−1.2, 1)', () => {
    // f = (1 − x)² + 100 (y − x²)², minimum 0 at (1, 1)
    let calls = 0;
    const result = minimizeLbfgs(
      (p, g) => {
        calls++;
        const [x, y] = p;
        g[0] = -2 * (1 - x) - 400 * x * (y - x * x);
        g[1] = 200 * (y - x * x);
        return (1 - x) ** 2 + 100 * (y - x * x) ** 2;
      },
      Float64Array.from([-1.2, 1]),
      { maxIterations: 200, gradientTolerance: 1e-9, functionTolerance: 0 },
    );
    expect(result.reason).toBe('gradient-tolerance');
    expect(result.x[0]).toBeCloseTo(1, 8);
    expect(result.x[1]).toBeCloseTo(1, 8);
    expect(result.f).toBeLessThan(1e-16);
    expect(result.evaluations).toBe(calls);
    expect(result.iterations).toBeLessThan(60);
  });

  it('solves an ill-conditioned quadratic exactly', () => {
    // f = ½ Σ a_i x_i² − Σ b_i x_i with a_i from 1 to 100: minimiser x_i = b_i / a_i
    const size = 50;
    const a = Float64Array.from({ length: size }, (_, i) => 100 ** (i / (size - 1)));
    const b = Float64Array.from({ length: size }, (_, i) => Math.sin(i + 1));
    const result = minimizeLbfgs(
      (x, g) => {
        let f = 0;
        for (let i = 0; i < size; i++) {
          g[i] = a[i] * x[i] - b[i];
          f += 0.5 * a[i] * x[i] * x[i] - b[i] * x[i];
        }
        return f;
      },
      new Float64Array(size),
      { maxIterations: 500, gradientTolerance: 1e-7, functionTolerance: 0 },
    );
    expect(result.reason).toBe('gradient-tolerance');
    expect(result.gradientNorm).toBeLessThanOrEqual(1e-7);
    expect(result.iterations).toBeLessThan(120); // scipy's L-BFGS-B (m = 10) needs 87
    // ‖x − x*‖∞ ≤ ‖g‖∞ / min a_i = 1e-7
    for (let i = 0; i < size; i++) expect(Math.abs(result.x[i] - b[i] / a[i])).toBeLessThanOrEqual(1e-7);
  });

  it('stops at maxIterations, or when the callback asks, and reports why', () => {
    const rosenbrock = (p: Float64Array, g: Float64Array) => {
      const [x, y] = p;
      g[0] = -2 * (1 - x) - 400 * x * (y - x * x);
      g[1] = 200 * (y - x * x);
      return (1 - x) ** 2 + 100 * (y - x * x) ** 2;
    };
    const capped = minimizeLbfgs(rosenbrock, Float64Array.from([-1.2, 1]), { maxIterations: 3, gradientTolerance: 1e-9 });
    expect(capped.reason).toBe('max-iterations');
    expect(capped.iterations).toBe(3);
    const seen: number[] = [];
    const stopped = minimizeLbfgs(rosenbrock, Float64Array.from([-1.2, 1]), {
      maxIterations: 100,
      gradientTolerance: 1e-9,
      onIteration: ({ iteration, f }) => {
        seen.push(f);
        return iteration === 5;
      },
    });
    expect(stopped.reason).toBe('callback');
    expect(seen.length).toBe(5);
    // every accepted step decreases f (sufficient-decrease condition)
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeLessThan(seen[i - 1]);
  });

  it('returns immediately at a stationary point', () => {
    const result = minimizeLbfgs(
      (x, g) => {
        g[0] = 2 * x[0];
        return x[0] * x[0];
      },
      Float64Array.from([0]),
      { maxIterations: 10, gradientTolerance: 1e-12 },
    );
    expect(result).toMatchObject({ reason: 'gradient-tolerance', iterations: 0, evaluations: 1, f: 0 });
  });
});
