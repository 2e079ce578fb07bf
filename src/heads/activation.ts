/** Hidden-layer nonlinearities for the MLP head, with derivatives for training. */
export type Activation = 'relu' | 'gelu';

export const ACTIVATIONS: readonly Activation[] = ['relu', 'gelu'];

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/** GELU uses the tanh approximation (as in BERT/GPT-2): no erf in Math, and it is within 1e-3 of exact. */
export function activate(kind: Activation, x: number): number {
  if (kind === 'relu') return x > 0 ? x : 0;
  return 0.5 * x * (1 + Math.tanh(GELU_C * (x + GELU_A * x * x * x)));
}

export function activationDerivative(kind: Activation, x: number): number {
  if (kind === 'relu') return x > 0 ? 1 : 0;
  const t = Math.tanh(GELU_C * (x + GELU_A * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * GELU_A * x * x);
}
