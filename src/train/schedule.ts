import { usageError } from '../util/errors.js';

/** Learning-rate schedules, evaluated per optimiser step (not per epoch: short runs need the resolution). */
export type ScheduleKind = 'cosine' | 'one-cycle' | 'constant';

export const SCHEDULES: readonly ScheduleKind[] = ['cosine', 'one-cycle', 'constant'];

/** One-cycle's start is peak/25 and its end start/1e4: torch.optim.lr_scheduler.OneCycleLR's defaults. */
export const ONE_CYCLE_DIV_FACTOR = 25;
export const ONE_CYCLE_FINAL_DIV_FACTOR = 1e4;

/**
 * Returns lr(step) for step = 0 … totalSteps−1.
 * - cosine: linear warmup over round(warmupFraction·totalSteps) steps from peak/W to peak
 *   (lr at step s < W is peak·(s+1)/W), then peak·½(1 + cos(π·(s−W)/(totalSteps−W))), decaying toward 0.
 * - one-cycle: exactly OneCycleLR with anneal_strategy 'cos': cosine rise from peak/25 to peak
 *   until step warmupFraction·totalSteps − 1, then cosine fall to peak/25/1e4 at the last step.
 * - constant: peak throughout (warmupFraction ignored).
 */
export function makeSchedule(
  kind: ScheduleKind,
  peak: number,
  totalSteps: number,
  warmupFraction: number,
): (step: number) => number {
  if (!(totalSteps >= 1)) throw usageError(`a schedule needs at least one step, got ${totalSteps}`);
  switch (kind) {
    case 'constant':
      return () => peak;
    case 'cosine': {
      const warmup = Math.min(Math.round(warmupFraction * totalSteps), totalSteps - 1);
      const decaySteps = totalSteps - warmup;
      return (step) => {
        if (step < warmup) return (peak * (step + 1)) / warmup;
        return peak * 0.5 * (1 + Math.cos((Math.PI * (step - warmup)) / decaySteps));
      };
    }
    case 'one-cycle': {
      const initial = peak / ONE_CYCLE_DIV_FACTOR;
      const final = initial / ONE_CYCLE_FINAL_DIV_FACTOR;
      const peakStep = warmupFraction * totalSteps - 1;
      const lastStep = totalSteps - 1;
      const anneal = (from: number, to: number, fraction: number) =>
        to + ((from - to) / 2) * (1 + Math.cos(Math.PI * fraction));
      return (step) => {
        if (step <= peakStep) return peakStep <= 0 ? peak : anneal(initial, peak, step / peakStep);
        if (lastStep <= peakStep) return peak;
        return anneal(peak, final, (step - peakStep) / (lastStep - peakStep));
      };
    }
    default:
      throw usageError(`unknown schedule ${JSON.stringify(kind)} (expected one of ${SCHEDULES.join(', ')})`);
  }
}
