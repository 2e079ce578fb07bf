import { dataError } from '../util/errors.js';
import { Rng } from '../util/rng.js';

/**
 * Picks `shots` examples of every class at random (seeded), as few-shot protocols do (SetFit draws
 * N per class per seed). Returns indices into `labels`, in ascending order; `shots: 'all'` keeps all.
 */
export function sampleShots(labels: ArrayLike<number>, numClasses: number, shots: number | 'all', seed: number): number[] {
  if (shots === 'all') return Array.from({ length: labels.length }, (_, i) => i);
  if (!Number.isInteger(shots) || shots < 1) throw dataError(`shots per class must be a positive integer, got ${shots}`);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) byClass[labels[i]!]!.push(i);
  const rng = new Rng(seed);
  const picked: number[] = [];
  byClass.forEach((members, label) => {
    if (members.length < shots) {
      throw dataError(`class #${label} has ${members.length} training example(s), fewer than the ${shots} shots asked for`);
    }
    picked.push(...rng.shuffle([...members]).slice(0, shots));
  });
  return picked.sort((a, b) => a - b);
}
