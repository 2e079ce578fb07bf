import type { FeatureSet } from '../heads/head.js';
import { stratifiedSplit } from '../data/dataset.js';
import { fitHead, type FitOptions } from '../train/fit.js';
import { computeMetrics } from './metrics.js';
import { meanStd, selectRows, type MeanStd } from './few-shot.js';

export interface HeldOutGroup {
  group: string;
  /** Examples scored (the held-out group's) and trained on (everyone else's, validation included). */
  testSize: number;
  trainSize: number;
  accuracy: number;
  macroF1: number;
}

export interface HeldOutGroupsResult {
  groups: HeldOutGroup[];
  accuracy: MeanStd;
  macroF1: MeanStd;
}

/**
 * Leave-one-group-out: for each group (a speaker, a recording session, a site…), fit the head on
 * all other groups — holding out a stratified share of them for early stopping — and score it on
 * the held-out group, which it has never heard. Reports each group and the mean ± sample standard
 * deviation over groups. Works on features, so the backbone runs once for all folds.
 */
export function leaveOneGroupOut(
  set: FeatureSet,
  groupOfRow: string[],
  labels: string[],
  options: { fit?: Partial<FitOptions>; validationFraction?: number; seed?: number } = {},
): HeldOutGroupsResult {
  if (groupOfRow.length !== set.labels.length) throw new RangeError(`one group per row expected: ${groupOfRow.length} groups for ${set.labels.length} rows`);
  const seed = options.seed ?? 0;
  const groups = [...new Set(groupOfRow)].sort();
  if (groups.length < 2) throw new RangeError(`leave-one-group-out needs at least two groups, got ${groups.length}`);
  const results = groups.map((group): HeldOutGroup => {
    const others = groupOfRow.flatMap((g, row) => (g === group ? [] : [{ row, label: set.labels[row]!, source: String(row).padStart(9, '0') }]));
    const held = groupOfRow.flatMap((g, row) => (g === group ? [row] : []));
    const { train, validation } = stratifiedSplit(others, labels, { validationFraction: options.validationFraction ?? 0.1, seed, origin: `groups other than ${group}` });
    const { head } = fitHead(selectRows(set, train.map((r) => r.row)), selectRows(set, validation.map((r) => r.row)), { ...options.fit, seed });
    const test = selectRows(set, held);
    const metrics = computeMetrics(test.labels, head.predictProba(test.features), labels);
    return { group, testSize: held.length, trainSize: others.length, accuracy: metrics.accuracy, macroF1: metrics.macro.f1 };
  });
  return { groups: results, accuracy: meanStd(results.map((r) => r.accuracy)), macroF1: meanStd(results.map((r) => r.macroF1)) };
}
