/**
 * Limited-memory BFGS with a strong-Wolfe line search, for smooth full-batch objectives.
 * Written here because no maintained, dependency-free L-BFGS for Float64Array exists on npm.
 * The line search follows Nocedal & Wright (Algorithms 3.5 and 3.6) with safeguarded cubic
 * interpolation, as in minFunc and torch.optim.LBFGS.
 */

/** Evaluates f(x), writing ∇f(x) into `grad`. */
export type ObjectiveFunction = (x: Float64Array, grad: Float64Array) => number;

export interface LbfgsOptions {
  maxIterations: number;
  /** Stop when ‖∇f‖∞ ≤ gradientTolerance. */
  gradientTolerance: number;
  /** Stop when an iteration lowers f by less than functionTolerance · max(1, |f|) (stagnation). */
  functionTolerance?: number;
  /** Curvature pairs kept. */
  memory?: number;
  /** Called after every iteration; return true to stop. */
  onIteration?: (info: LbfgsIteration) => boolean | void;
}

export interface LbfgsIteration {
  iteration: number;
  f: number;
  x: Float64Array;
  gradientNorm: number;
  /** Line-search step length taken. */
  step: number;
  /** 1-based index of the f/∇f call that produced x (to look up anything recorded during that call). */
  evaluation: number;
}

export type LbfgsStopReason =
  | 'gradient-tolerance'
  | 'function-tolerance'
  | 'max-iterations'
  | 'line-search-failed'
  | 'callback';

export interface LbfgsResult {
  x: Float64Array;
  f: number;
  /** ‖∇f(x)‖∞ */
  gradientNorm: number;
  iterations: number;
  evaluations: number;
  reason: LbfgsStopReason;
}

const C1 = 1e-4; // sufficient decrease (Armijo)
const C2 = 0.9; // curvature: 0.9 is the standard choice for quasi-Newton methods
const MAX_LINE_SEARCH_EVALUATIONS = 25;

export function minimizeLbfgs(fg: ObjectiveFunction, x0: Float64Array, options: LbfgsOptions): LbfgsResult {
  const size = x0.length;
  const memory = options.memory ?? 10;
  const functionTolerance = options.functionTolerance ?? 1e-12;
  const x = Float64Array.from(x0);
  let grad: Float64Array = new Float64Array(size);
  let evaluations = 0;
  const evaluate = (point: Float64Array, out: Float64Array) => {
    evaluations++;
    return fg(point, out);
  };

  let f = evaluate(x, grad);
  const result = (reason: LbfgsStopReason, iterations: number): LbfgsResult => ({
    x,
    f,
    gradientNorm: maxAbs(grad),
    iterations,
    evaluations,
    reason,
  });
  if (!Number.isFinite(f)) return result('line-search-failed', 0);
  if (maxAbs(grad) <= options.gradientTolerance) return result('gradient-tolerance', 0);

  const sHistory: Float64Array[] = [];
  const yHistory: Float64Array[] = [];
  const rhoHistory: number[] = [];
  const alpha = new Float64Array(memory);
  const direction = new Float64Array(size);
  let spareS: Float64Array = new Float64Array(size);
  let spareY: Float64Array = new Float64Array(size);
  const search = new LineSearch(size, evaluate, () => evaluations);

  for (let iteration = 1; iteration <= options.maxIterations; iteration++) {
    // Two-loop recursion: direction = −H·g with H the L-BFGS inverse-Hessian approximation.
    for (let i = 0; i < size; i++) direction[i] = -grad[i];
    const pairs = sHistory.length;
    for (let p = pairs - 1; p >= 0; p--) {
      alpha[p] = rhoHistory[p] * dot(sHistory[p], direction);
      axpy(-alpha[p], yHistory[p], direction);
    }
    let initialStep = 1;
    if (pairs > 0) {
      // Scale H0 = γI by γ = sᵀy / yᵀy of the newest pair (Nocedal & Wright eq. 7.20).
      const sLast = sHistory[pairs - 1];
      const yLast = yHistory[pairs - 1];
      const gamma = dot(sLast, yLast) / dot(yLast, yLast);
      for (let i = 0; i < size; i++) direction[i] *= gamma;
    } else {
      // No curvature yet: a unit-length first step, so a steep start cannot overshoot wildly.
      initialStep = Math.min(1, 1 / sumAbs(grad));
    }
    for (let p = 0; p < pairs; p++) {
      const beta = rhoHistory[p] * dot(yHistory[p], direction);
      axpy(alpha[p] - beta, sHistory[p], direction);
    }

    let directional = dot(grad, direction);
    if (!(directional < 0)) {
      // Lost descent (numerical trouble in the curvature pairs): restart from steepest descent.
      sHistory.length = 0;
      yHistory.length = 0;
      rhoHistory.length = 0;
      for (let i = 0; i < size; i++) direction[i] = -grad[i];
      directional = dot(grad, direction);
      initialStep = Math.min(1, 1 / sumAbs(grad));
    }

    const found = search.run(x, f, grad, direction, directional, initialStep);
    if (!found.ok) return result('line-search-failed', iteration - 1);

    // s = t·d, y = ∇f_new − ∇f.
    const s = spareS;
    const y = spareY;
    for (let i = 0; i < size; i++) {
      s[i] = found.step * direction[i];
      y[i] = found.grad[i] - grad[i];
    }
    const ys = dot(y, s);
    // Keep the pair only if it carries positive curvature; otherwise H would stop being positive definite.
    if (ys > 1e-10 * dot(y, y)) {
      if (sHistory.length === memory) {
        // Recycle the oldest pair's arrays as the next scratch pair.
        spareS = sHistory.shift()!;
        spareY = yHistory.shift()!;
        rhoHistory.shift();
      } else {
        spareS = new Float64Array(size);
        spareY = new Float64Array(size);
      }
      sHistory.push(s);
      yHistory.push(y);
      rhoHistory.push(1 / ys);
    }

    const previousF = f;
    axpy(found.step, direction, x);
    f = found.f;
    const oldGrad = grad;
    grad = found.grad;
    search.recycle(oldGrad);

    const gradientNorm = maxAbs(grad);
    const stop = options.onIteration?.({
      iteration,
      f,
      x,
      gradientNorm,
      step: found.step,
      evaluation: found.evaluation,
    });
    if (gradientNorm <= options.gradientTolerance) return result('gradient-tolerance', iteration);
    if (previousF - f <= functionTolerance * Math.max(1, Math.abs(f))) return result('function-tolerance', iteration);
    if (stop === true) return result('callback', iteration);
  }
  return result('max-iterations', options.maxIterations);
}

interface LineSearchResult {
  ok: boolean;
  step: number;
  f: number;
  grad: Float64Array;
  /** 1-based index of the f/∇f call at the accepted point. */
  evaluation: number;
}

/** A trial point of the line search: step t, f, ∇f, and the directional derivative ∇f·d. */
interface Trial {
  t: number;
  f: number;
  grad: Float64Array;
  slope: number;
  evaluation: number;
}

/** Strong-Wolfe line search; owns a pool of gradient buffers so a search allocates nothing per trial. */
class LineSearch {
  private readonly point: Float64Array;
  private readonly pool: Float64Array[] = [];

  constructor(
    private readonly size: number,
    private readonly evaluate: (x: Float64Array, grad: Float64Array) => number,
    private readonly evaluationCount: () => number,
  ) {
    this.point = new Float64Array(size);
  }

  recycle(buffer: Float64Array): void {
    this.pool.push(buffer);
  }

  private buffer(): Float64Array {
    return this.pool.pop() ?? new Float64Array(this.size);
  }

  private trial(x: Float64Array, direction: Float64Array, t: number): Trial {
    const { point } = this;
    for (let i = 0; i < point.length; i++) point[i] = x[i] + t * direction[i];
    const grad = this.buffer();
    const f = this.evaluate(point, grad);
    return { t, f, grad, slope: dot(grad, direction), evaluation: this.evaluationCount() };
  }

  run(
    x: Float64Array,
    f0: number,
    grad0: Float64Array,
    direction: Float64Array,
    slope0: number,
    initialStep: number,
  ): LineSearchResult {
    const origin: Trial = { t: 0, f: f0, grad: grad0, slope: slope0, evaluation: 0 };
    const dNorm = maxAbs(direction);
    const accept = (trial: Trial): LineSearchResult => ({
      ok: true,
      step: trial.t,
      f: trial.f,
      grad: trial.grad,
      evaluation: trial.evaluation,
    });
    const release = (trial: Trial) => {
      if (trial !== origin) this.recycle(trial.grad);
    };
    const armijo = (trial: Trial) => trial.f <= f0 + C1 * trial.t * slope0;
    const curvature = (trial: Trial) => Math.abs(trial.slope) <= -C2 * slope0;

    // Bracketing phase (N&W Algorithm 3.5): grow the step until it overshoots or satisfies both conditions.
    let previous = origin;
    let current = this.trial(x, direction, initialStep);
    let low: Trial;
    let high: Trial;
    let evaluations = 1;
    for (;;) {
      if (!Number.isFinite(current.f)) {
        // Stepped into overflow: treat as "too far" and bracket with the previous point.
        current.f = Infinity;
        [low, high] = [previous, current];
        break;
      }
      if (!armijo(current) || (evaluations > 1 && current.f >= previous.f)) {
        [low, high] = [previous, current];
        break;
      }
      if (curvature(current)) {
        release(previous);
        return accept(current);
      }
      if (current.slope >= 0) {
        [low, high] = [current, previous];
        break;
      }
      if (evaluations >= MAX_LINE_SEARCH_EVALUATIONS) {
        release(previous);
        return accept(current); // still a descent step satisfying Armijo
      }
      const next = cubicMinimizer(previous, current, current.t + 0.01 * (current.t - previous.t), current.t * 10);
      release(previous);
      previous = current;
      current = this.trial(x, direction, next);
      evaluations++;
    }

    // Zoom phase (N&W Algorithm 3.6): shrink [low, high] until a point satisfies strong Wolfe.
    // `low` always satisfies Armijo and has the lowest f seen; the interval always contains a minimiser.
    let insufficientProgress = false;
    while (evaluations < MAX_LINE_SEARCH_EVALUATIONS) {
      const lo = Math.min(low.t, high.t);
      const hi = Math.max(low.t, high.t);
      if ((hi - lo) * dNorm < 1e-12) break;
      let t = Number.isFinite(high.f) ? cubicMinimizer(low, high, lo, hi) : (low.t + high.t) / 2;
      // Keep away from the ends, or bisection-like progress is lost (torch.optim.LBFGS's safeguard).
      const margin = 0.1 * (hi - lo);
      if (Math.min(hi - t, t - lo) < margin) {
        if (insufficientProgress || t >= hi || t <= lo) {
          t = Math.abs(t - hi) < Math.abs(t - lo) ? hi - margin : lo + margin;
          insufficientProgress = false;
        } else {
          insufficientProgress = true;
        }
      } else {
        insufficientProgress = false;
      }
      const trial = this.trial(x, direction, t);
      evaluations++;
      if (!Number.isFinite(trial.f) || !armijo(trial) || trial.f >= low.f) {
        release(high);
        high = trial;
      } else {
        if (curvature(trial)) {
          release(low);
          release(high);
          return accept(trial);
        }
        if (trial.slope * (high.t - low.t) >= 0) {
          release(high);
          high = low;
        } else {
          release(low);
        }
        low = trial;
      }
    }
    release(high);
    // Out of evaluations: settle for the best point with sufficient decrease, if any step was taken.
    if (low === origin) return { ok: false, step: 0, f: f0, grad: grad0, evaluation: 0 };
    return accept(low);
  }
}

/**
 * Minimiser of the cubic through (a.t, a.f, a.slope) and (b.t, b.f, b.slope), clamped to
 * [lower, upper]; the midpoint when the cubic has no minimiser there.
 */
function cubicMinimizer(a: Trial, b: Trial, lower: number, upper: number): number {
  const d1 = a.slope + b.slope - (3 * (a.f - b.f)) / (a.t - b.t);
  const discriminant = d1 * d1 - a.slope * b.slope;
  if (discriminant >= 0 && Number.isFinite(discriminant)) {
    const d2 = Math.sqrt(discriminant);
    const t =
      a.t <= b.t
        ? b.t - (b.t - a.t) * ((b.slope + d2 - d1) / (b.slope - a.slope + 2 * d2))
        : a.t - (a.t - b.t) * ((a.slope + d2 - d1) / (a.slope - b.slope + 2 * d2));
    if (Number.isFinite(t)) return Math.min(Math.max(t, lower), upper);
  }
  return (lower + upper) / 2;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function axpy(alpha: number, x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < y.length; i++) y[i] += alpha * x[i];
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(a[i]);
    if (v > m) m = v;
  }
  return m;
}

function sumAbs(a: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]);
  return s;
}
