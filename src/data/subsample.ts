import { dataError } from '../util/errors.js';
import { Rng } from '../util/rng.js';

/**
 * Picks `shots` examples of every class at random (seeded), as few-shot protocols do (SetFit draws
 * N per class per seed). Returns indices into `labels`, in ascending order; `shots: 'all'` keeps all.
 * `classNames` (when known) name a class that has too few examples in the error.
 */
export function sampleShots(labels: ArrayLike<number>, numClasses: number, shots: number | 'all', seed: number, classNames?: readonly string[]): number[] {
  if (shots === 'all') return Array.from({ length: labels.length }, (_, i) => i);
  if (!Number.isInteger(shots) || shots < 1) throw dataError(`shots per class must be a positive integer, got ${shots}`);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) byClass[labels[i]!]!.push(i);
  const rng = new Rng(seed);
  const picked: number[] = [];
  byClass.forEach((members, label) => {
    if (members.length < shots) {
      const name = classNames?.[label] === undefined ? `#${label}` : JSON.stringify(classNames[label]);
      throw dataError(`class ${name} has ${members.length} training example(s), fewer than the ${shots} shots per class asked for`);
    }
    picked.push(...rng.shuffle([...members]).slice(0, shots));
  });
  return picked.sort((a, b) => a - b);
}
