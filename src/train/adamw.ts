/**
 * AdamW (Loshchilov & Hutter): Adam with bias correction and weight decay applied directly to the
 * weights (θ ← θ − lr·λ·θ) instead of through the gradient, so the decay is not rescaled by
 * Adam's per-parameter step sizes. Matches torch.optim.AdamW. Only parameters [0, decayEnd)
 * (weight matrices) are decayed; biases are not.
 */
export class AdamW {
  private readonly m: Float64Array;
  private readonly v: Float64Array;
  private t = 0;

  constructor(
    size: number,
    private readonly decayEnd: number,
    private readonly weightDecay: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly epsilon = 1e-8,
  ) {
    this.m = new Float64Array(size);
    this.v = new Float64Array(size);
  }

  step(params: Float64Array, grad: Float64Array, lr: number): void {
    this.t++;
    const stepSize = lr / (1 - this.beta1 ** this.t);
    const secondMomentCorrection = 1 / Math.sqrt(1 - this.beta2 ** this.t);
    this.update(params, grad, 0, this.decayEnd, stepSize, secondMomentCorrection, 1 - lr * this.weightDecay);
    this.update(params, grad, this.decayEnd, params.length, stepSize, secondMomentCorrection, 1);
  }

  private update(
    params: Float64Array,
    grad: Float64Array,
    start: number,
    end: number,
    stepSize: number,
    secondMomentCorrection: number,
    decayFactor: number,
  ): void {
    const { m, v, beta1, beta2, epsilon } = this;
    const oneMinusBeta1 = 1 - beta1;
    const oneMinusBeta2 = 1 - beta2;
    for (let i = start; i < end; i++) {
      const g = grad[i];
      const mi = beta1 * m[i] + oneMinusBeta1 * g;
      const vi = beta2 * v[i] + oneMinusBeta2 * g * g;
      m[i] = mi;
      v[i] = vi;
      params[i] = params[i] * decayFactor - (stepSize * mi) / (Math.sqrt(vi) * secondMomentCorrection + epsilon);
    }
  }
}
