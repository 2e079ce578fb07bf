import { accuracy, logLoss } from '../evaluate/metrics.js';
import { isSparse, sparseProblem } from '../features/sparse.js';
import { ACTIVATIONS, type Activation } from '../heads/activation.js';
import { CentroidHead } from '../heads/centroid.js';
import { type BaseHead, softmaxRowsInPlace } from '../heads/common.js';
import { HEAD_TYPES, type FeatureSet, type Head, type HeadType } from '../heads/head.js';
import { KnnHead } from '../heads/knn.js';
import { Standardizer, standardizeAll } from '../heads/standardizer.js';
import { dataError, usageError } from '../util/errors.js';
import { type Reporter, silentReporter } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { AdamW } from './adamw.js';
import { type LbfgsStopReason, minimizeLbfgs } from './lbfgs.js';
import { LinearModel, MlpModel } from './models.js';
import {
  Objective,
  PREPARED_VALUES_LIMIT,
  type TrainableModel,
  TrainingRows,
  allRows,
  resolveClassWeights,
} from './objective.js';
import { SCHEDULES, type ScheduleKind, makeSchedule } from './schedule.js';

export interface FitOptions {
  /** Default 'linear'. */
  head?: HeadType;
  /** 'lbfgs': full-batch, linear head only. Default 'adamw'. */
  optimizer?: 'adamw' | 'lbfgs';
  /** AdamW: passes over the training set. L-BFGS: maximum iterations. */
  epochs?: number;
  batchSize?: number;
  /** Peak learning rate of the schedule. */
  lr?: number;
  /**
   * AdamW: decoupled decay λ (θ ← θ − lr·λ·θ per step), default 0.05. L-BFGS: L2 penalty λ/2·‖W‖²
   * on the mean loss, default 10/n. Biases are never decayed.
   */
  weightDecay?: number;
  /** Default 0.1 (AdamW), 0 (L-BFGS, whose L2 term already regularises). */
  labelSmoothing?: number;
  classWeights?: 'balanced' | 'none' | number[];
  schedule?: ScheduleKind;
  warmupFraction?: number;
  /**
   * Stop after this many epochs without a lower validation loss (0: never stop early). Whenever a
   * validation set is given, the returned head is the epoch with the lowest validation loss.
   */
  patience?: number;
  hiddenUnits?: number;
  dropout?: number;
  activation?: Activation;
  /** knn: neighbours that vote. */
  k?: number;
  /** L-BFGS: stop when the gradient's largest component is below this. */
  tolerance?: number;
  /** Default true. */
  standardize?: boolean;
  /** Default 0. */
  seed?: number;
}

/** The options that actually applied, defaults filled in; JSON-able, for the manifest. */
export type ResolvedFitOptions = Omit<FitOptions, 'head' | 'standardize' | 'seed'> & Required<Pick<FitOptions, 'head' | 'standardize' | 'seed'>>;

export interface EpochRecord {
  /** 1-based (an L-BFGS iteration for the L-BFGS optimiser). */
  epoch: number;
  /** Learning rate of the epoch's last step (L-BFGS: the line-search step length). */
  lr: number;
  /**
   * Training objective (smoothed, class-weighted cross-entropy, without weight decay) and
   * accuracy. AdamW: running averages over the epoch's mini-batches (dropout on). L-BFGS: exact,
   * full batch.
   */
  trainLoss: number;
  trainAccuracy: number;
  /** Plain log loss (no smoothing, no class weights) and accuracy of this epoch's head on the validation set. */
  valLoss?: number;
  valAccuracy?: number;
  seconds: number;
}

export interface FitResult {
  head: Head;
  /** One record per epoch; empty for knn and centroid, which have no training. */
  history: EpochRecord[];
  /** Epoch whose weights the head holds (0 for knn/centroid). */
  bestEpoch: number;
  stoppedEarly: boolean;
  options: ResolvedFitOptions;
  /** L-BFGS only: why it stopped. */
  convergence?: { reason: LbfgsStopReason; iterations: number; gradientNorm: number };
  seconds: number;
}

/**
 * Defaults, chosen for few-shot transfer on frozen backbone features (a few hundred to tens of
 * thousands of rows, dim 100–2048, inputs standardised):
 * - AdamW with a cosine schedule and 5% warmup: warmup tames Adam's first, sign-like steps, which
 *   on ~2000 standardised inputs move every logit at once; cosine needs no tuning of decay points.
 * - lr 2e-3 (linear) and 1e-3 (mlp): the usual Adam range for heads on standardised features;
 *   the MLP is lower because its hidden layer amplifies steps.
 * - weightDecay 0.05 (AdamW, as in DeiT/MAE fine-tuning) and label smoothing 0.1: smoothing caps
 *   the logit margin (ln 19 for two classes) against the over-confidence a head fitted on a few
 *   hundred rows falls into; with early stopping on hymenoptera features, smoothing 0, 0.05 and
 *   0.1 were within noise of each other (log loss 0.21–0.22).
 * - batch 32: enough gradient noise to regularise, enough steps per epoch on small sets.
 * - epochs: about 2000 optimiser steps, clamped to 5–100 epochs (100 epochs = 800 steps on 250
 *   rows, 7 epochs on 10,000 rows, 5 on 13,000+, where more passes cost time and rarely help),
 *   with patience 10 on the validation loss.
 * - mlp: 128 hidden ReLU units (He init), dropout 0.2. Cost is ~3·hidden·dim multiply-adds per
 *   row and epoch in pure JS, so 128 keeps 10,000×100 at a few seconds; on a few hundred rows a
 *   wider layer only memorises faster.
 * - L-BFGS: no early stopping, so the L2 term is the regulariser: λ = 10/n on the mean loss
 *   (scikit-learn's LogisticRegression(C=0.1) on standardised features), no label smoothing.
 *   On MobileNetV2 features of hymenoptera (196 rows, 1280-d) this gave log loss 0.21 against 0.25
 *   for C = 1, and smoothing 0.1 cost 0.03–0.05 in log loss at every λ tried. Gradient tolerance 1e-6
 *   (max component), at most 500 iterations; it converges in tens on these problems.
 * - knn: k = 10 (distance weighting keeps far neighbours from outvoting close ones).
 */
export const FIT_DEFAULTS = {
  head: 'linear' as HeadType,
  labelSmoothing: 0.1,
  classWeights: 'none' as const,
  batchSize: 32,
  targetSteps: 2000,
  minEpochs: 5,
  maxEpochs: 100,
  schedule: 'cosine' as ScheduleKind,
  warmupFraction: 0.05,
  oneCycleWarmupFraction: 0.3,
  patience: 10,
  linear: { lr: 2e-3, weightDecay: 0.05 },
  mlp: { lr: 1e-3, weightDecay: 0.05, hiddenUnits: 128, dropout: 0.2, activation: 'relu' as Activation },
  lbfgs: { maxIterations: 500, weightDecayTimesRows: 10, labelSmoothing: 0, tolerance: 1e-6 },
  knn: { k: 10 },
  seed: 0,
};

const OPTION_KEYS = [
  'head',
  'optimizer',
  'epochs',
  'batchSize',
  'lr',
  'weightDecay',
  'labelSmoothing',
  'classWeights',
  'schedule',
  'warmupFraction',
  'patience',
  'hiddenUnits',
  'dropout',
  'activation',
  'k',
  'tolerance',
  'standardize',
  'seed',
] as const;

type OptionKey = (typeof OPTION_KEYS)[number];

const COMMON_KEYS: OptionKey[] = ['head', 'standardize', 'seed'];
const GRADIENT_KEYS: OptionKey[] = ['optimizer', 'epochs', 'weightDecay', 'labelSmoothing', 'classWeights'];
const ADAMW_KEYS: OptionKey[] = ['batchSize', 'lr', 'schedule', 'warmupFraction', 'patience'];

function applicableKeys(head: HeadType, optimizer: 'adamw' | 'lbfgs'): OptionKey[] {
  switch (head) {
    case 'knn':
      return [...COMMON_KEYS, 'k'];
    case 'centroid':
      return COMMON_KEYS;
    case 'linear':
      return optimizer === 'lbfgs'
        ? [...COMMON_KEYS, ...GRADIENT_KEYS, 'tolerance']
        : [...COMMON_KEYS, ...GRADIENT_KEYS, ...ADAMW_KEYS];
    case 'mlp':
      return [...COMMON_KEYS, ...GRADIENT_KEYS, ...ADAMW_KEYS, 'hiddenUnits', 'dropout', 'activation'];
  }
}

/** Dense values (float64) a head other than the sparse linear one may make of sparse rows: 1 GiB. */
export const DENSE_FALLBACK_VALUES = 2 ** 27;

/**
 * Trains a head on `train`; with `validation`, tracks the validation loss every epoch, stops after
 * `patience` epochs without improvement and returns the best epoch's head.
 * All randomness (initialisation, batch order, dropout) comes from `seed`: the same inputs and
 * seed give bit-identical weights.
 */
export function fitHead(
  train: FeatureSet,
  validation: FeatureSet | undefined,
  options: FitOptions = {},
  reporter: Reporter = silentReporter,
): FitResult {
  const started = performance.now();
  checkFeatureSet(train, 'training');
  if (train.labels.length === 0) throw dataError('the training set is empty');
  if (validation) {
    checkFeatureSet(validation, 'validation');
    if (validation.dim !== train.dim) {
      throw usageError(`validation features have dim ${validation.dim}, training features ${train.dim}`);
    }
    if (validation.numClasses !== train.numClasses) {
      throw usageError(`validation set has ${validation.numClasses} classes, training set ${train.numClasses}`);
    }
    if (validation.labels.length === 0) throw dataError('the validation set is empty');
  }
  const resolved = resolveOptions(train, options, reporter);
  if (isSparse(train.features) && (resolved.head !== 'linear' || resolved.standardize)) {
    // Only the unstandardised linear head reads non-zeros alone; the rest see dense rows.
    const values = train.labels.length * train.dim;
    if (values > DENSE_FALLBACK_VALUES) {
      throw usageError(
        `a ${resolved.standardize ? 'standardised ' : ''}${resolved.head} head needs the ${train.labels.length}×${train.dim} sparse training rows as dense ones ` +
          `(${values.toExponential(1)} values, the limit is ${DENSE_FALLBACK_VALUES.toExponential(1)}): train the linear head without standardisation, or cap the terms (--max-terms)`,
      );
    }
  }
  const standardizer = resolved.standardize
    ? Standardizer.fit(train.features, train.labels.length, train.dim)
    : null;
  const finish = (run: Omit<FitResult, 'options' | 'seconds'>): FitResult => ({
    ...run,
    options: resolved,
    seconds: (performance.now() - started) / 1000,
  });

  switch (resolved.head) {
    case 'knn':
      return finish({
        head: KnnHead.fit(train, standardizer, resolved.k!),
        history: [],
        bestEpoch: 0,
        stoppedEarly: false,
      });
    case 'centroid':
      return finish({ head: CentroidHead.fit(train, standardizer), history: [], bestEpoch: 0, stoppedEarly: false });
    case 'linear':
    case 'mlp': {
      const rows = new TrainingRows(
        train,
        standardizer,
        resolveClassWeights(resolved.classWeights!, train.labels, train.numClasses),
      );
      const prepared = validation ? prepareValidation(validation, standardizer) : undefined;
      return finish(
        resolved.optimizer === 'lbfgs'
          ? trainLbfgs(rows, prepared, resolved, reporter)
          : trainAdamW(rows, prepared, resolved, reporter),
      );
    }
  }
}

function trainAdamW(
  rows: TrainingRows,
  validation: PreparedValidation | undefined,
  o: ResolvedFitOptions,
  reporter: Reporter,
): Omit<FitResult, 'options' | 'seconds'> {
  const { n, dim, numClasses, standardizer } = rows;
  const rng = new Rng(o.seed);
  const initRng = rng.fork();
  const orderRng = rng.fork();
  const dropoutRng = rng.fork();
  const model: TrainableModel =
    o.head === 'mlp'
      ? new MlpModel(dim, o.hiddenUnits!, numClasses, o.activation!, o.dropout!, o.labelSmoothing!)
      : new LinearModel(dim, numClasses, o.labelSmoothing!);
  const params = new Float64Array(model.size);
  model.init(params, initRng);
  const grad = new Float64Array(model.size);
  const optimizer = new AdamW(model.size, model.decayEnd, o.weightDecay!);
  const batchSize = Math.min(o.batchSize!, n);
  const stepsPerEpoch = Math.ceil(n / batchSize);
  const epochs = o.epochs!;
  const schedule = makeSchedule(o.schedule!, o.lr!, epochs * stepsPerEpoch, o.warmupFraction!);
  const objective = new Objective(model, rows, batchSize);
  const order = Array.from({ length: n }, (_, i) => i);
  const useDropout = o.head === 'mlp' && o.dropout! > 0;

  const task = reporter.task(`train ${o.head} head`, epochs, 'epochs');
  const history: EpochRecord[] = [];
  let best: { head: BaseHead; loss: number; epoch: number } | undefined;
  let stoppedEarly = false;
  let step = 0;
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const epochStarted = performance.now();
    orderRng.shuffle(order);
    let weightedLoss = 0;
    let weightTotal = 0;
    let correct = 0;
    let lr = 0;
    for (let start = 0; start < n; start += batchSize) {
      const count = Math.min(batchSize, n - start);
      const loss = objective.evaluate(params, order, start, count, grad, useDropout ? dropoutRng : null);
      weightedLoss += loss * objective.lastWeight;
      weightTotal += objective.lastWeight;
      correct += objective.stats.correct;
      lr = schedule(step++);
      optimizer.step(params, grad, lr);
    }
    const trainLoss = weightTotal > 0 ? weightedLoss / weightTotal : 0;
    if (!Number.isFinite(trainLoss) || !allFinite(params)) {
      throw usageError(
        `training diverged in epoch ${epoch} (loss ${trainLoss}); lower the learning rate (lr = ${o.lr})`,
      );
    }
    const record: EpochRecord = { epoch, lr, trainLoss, trainAccuracy: correct / n, seconds: 0 };
    if (validation) {
      const head = model.toHead(params, standardizer);
      Object.assign(record, validationScores(head, validation));
      if (best === undefined || record.valLoss! < best.loss) best = { head, loss: record.valLoss!, epoch };
    }
    record.seconds = (performance.now() - epochStarted) / 1000;
    history.push(record);
    task.tick(1, record);
    if (best && o.patience! > 0 && epoch - best.epoch >= o.patience! && epoch < epochs) {
      stoppedEarly = true;
      break;
    }
  }
  const last = history[history.length - 1];
  const summary = best
    ? `best epoch ${best.epoch}/${last.epoch}${stoppedEarly ? ' (stopped early)' : ''}, val loss ${best.loss.toFixed(4)}, val accuracy ${percent(history[best.epoch - 1].valAccuracy!)}`
    : `${last.epoch} epochs, train loss ${last.trainLoss.toFixed(4)}, train accuracy ${percent(last.trainAccuracy)}`;
  task.done(summary);
  return best
    ? { head: best.head, history, bestEpoch: best.epoch, stoppedEarly }
    : { head: model.toHead(params, standardizer), history, bestEpoch: last.epoch, stoppedEarly };
}

/**
 * Full-batch L-BFGS on the convex objective L(W, b) + λ/2·‖W‖². No early stopping: the L2 term
 * defines the solution, so stopping early would just make λ meaningless; the validation loss is
 * still recorded per iteration.
 */
function trainLbfgs(
  rows: TrainingRows,
  validation: PreparedValidation | undefined,
  o: ResolvedFitOptions,
  reporter: Reporter,
): Omit<FitResult, 'options' | 'seconds'> {
  const { n, dim, numClasses, standardizer } = rows;
  const model = new LinearModel(dim, numClasses, o.labelSmoothing!);
  const objective = new Objective(model, rows, n);
  const indices = allRows(n);
  const l2 = o.weightDecay!;
  const maxIterations = o.epochs!;
  // Per-evaluation data loss and accuracy, looked up for the point each iteration accepts.
  const dataLosses: number[] = [];
  const corrects: number[] = [];
  const fg = (x: Float64Array, g: Float64Array) => {
    const dataLoss = objective.evaluate(x, indices, 0, n, g);
    dataLosses.push(dataLoss);
    corrects.push(objective.stats.correct);
    return dataLoss + addL2(x, g, model.decayEnd, l2);
  };

  const task = reporter.task('train linear head (L-BFGS)', maxIterations, 'iterations');
  const history: EpochRecord[] = [];
  let iterationStarted = performance.now();
  const result = minimizeLbfgs(fg, new Float64Array(model.size), {
    maxIterations,
    gradientTolerance: o.tolerance!,
    onIteration: ({ iteration, x, step, evaluation }) => {
      const record: EpochRecord = {
        epoch: iteration,
        lr: step,
        trainLoss: dataLosses[evaluation - 1],
        trainAccuracy: corrects[evaluation - 1] / n,
        seconds: 0,
      };
      if (validation) Object.assign(record, validationScores(model.toHead(x, standardizer), validation));
      record.seconds = (performance.now() - iterationStarted) / 1000;
      iterationStarted = performance.now();
      history.push(record);
      task.tick(1, record);
    },
  });
  if (!Number.isFinite(result.f)) throw dataError('the L-BFGS objective is not finite at the start (check the features)');
  const convergence = { reason: result.reason, iterations: result.iterations, gradientNorm: result.gradientNorm };
  const converged = result.reason === 'gradient-tolerance' || result.reason === 'function-tolerance';
  task.done(
    `${converged ? 'converged' : 'stopped'} after ${result.iterations} iterations (${result.reason}, max |gradient| ${result.gradientNorm.toExponential(2)})`,
  );
  if (!converged) {
    reporter.warn(
      `L-BFGS stopped (${result.reason}) after ${result.iterations} iterations before reaching the gradient tolerance ${o.tolerance}; max |gradient| is ${result.gradientNorm.toExponential(2)}`,
    );
  }
  return {
    head: model.toHead(result.x, standardizer),
    history,
    bestEpoch: result.iterations,
    stoppedEarly: false,
    convergence,
  };
}

/** Adds λ·θ to the gradient of the decayed parameters; returns λ/2·‖θ‖² over them. */
export function addL2(params: Float64Array, grad: Float64Array, decayEnd: number, lambda: number): number {
  if (lambda === 0) return 0;
  let sumSquares = 0;
  for (let i = 0; i < decayEnd; i++) {
    sumSquares += params[i] * params[i];
    grad[i] += lambda * params[i];
  }
  return 0.5 * lambda * sumSquares;
}

/** A validation set standardised once (when small enough), since it is scored every epoch. */
interface PreparedValidation {
  set: FeatureSet;
  matrix: Float64Array | null;
}

function prepareValidation(validation: FeatureSet, standardizer: Standardizer | null): PreparedValidation {
  const n = validation.labels.length;
  // Sparse rows stay sparse: the linear head scores their non-zeros, other heads densify per chunk.
  const matrix =
    !isSparse(validation.features) && n * validation.dim <= PREPARED_VALUES_LIMIT ? standardizeAll(standardizer, validation.features, n, validation.dim) : null;
  return { set: validation, matrix };
}

/** Log loss and accuracy of `head`; the probabilities are bit-identical to head.predictProba(features). */
function validationScores(head: BaseHead, prepared: PreparedValidation): { valLoss: number; valAccuracy: number } {
  const validation = prepared.set;
  const scores = prepared.matrix
    ? head.scoresOfStandardized(prepared.matrix, validation.labels.length)
    : head.scores(validation.features);
  const probabilities = Float32Array.from(softmaxRowsInPlace(scores, validation.numClasses));
  return {
    valLoss: logLoss(validation.labels, probabilities, validation.numClasses),
    valAccuracy: accuracy(validation.labels, probabilities, validation.numClasses),
  };
}

/** Checks sizes, label range and finiteness up front, so a bad file fails here rather than as NaN weights. */
export function checkFeatureSet(set: FeatureSet, name: string): void {
  const { dim, numClasses, features, labels } = set;
  if (!Number.isInteger(dim) || dim < 1) throw usageError(`${name} set: dim must be a positive integer, got ${dim}`);
  if (!Number.isInteger(numClasses) || numClasses < 2) {
    throw usageError(`${name} set: need at least 2 classes, got ${numClasses}`);
  }
  if (isSparse(features)) {
    if (features.rows !== labels.length || features.dim !== dim) {
      throw dataError(`${name} set: ${labels.length} labels of dim ${dim} need as many sparse rows, got ${features.rows} rows of dim ${features.dim}`);
    }
    const problem = sparseProblem(features);
    if (problem) throw dataError(`${name} set: ${problem}`);
  } else if (features.length !== labels.length * dim) {
    throw dataError(
      `${name} set: ${labels.length} labels need ${labels.length}×${dim} = ${labels.length * dim} feature values, got ${features.length}`,
    );
  }
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < 0 || labels[i] >= numClasses) {
      throw dataError(`${name} set: label ${labels[i]} of row ${i} is not a class index below ${numClasses}`);
    }
  }
  if (isSparse(features)) return;
  for (let i = 0; i < features.length; i++) {
    if (!Number.isFinite(features[i])) {
      throw dataError(`${name} set: row ${Math.floor(i / dim)} has a non-finite feature (${features[i]}) at dimension ${i % dim}`);
    }
  }
}

function resolveOptions(train: FeatureSet, options: FitOptions, reporter: Reporter): ResolvedFitOptions {
  const n = train.labels.length;
  const head = options.head ?? FIT_DEFAULTS.head;
  if (!HEAD_TYPES.includes(head)) throw usageError(`unknown head ${JSON.stringify(head)} (expected one of ${HEAD_TYPES.join(', ')})`);
  const optimizer = options.optimizer ?? 'adamw';
  if (optimizer !== 'adamw' && optimizer !== 'lbfgs') {
    throw usageError(`unknown optimizer ${JSON.stringify(optimizer)} (expected adamw or lbfgs)`);
  }
  if (optimizer === 'lbfgs' && head !== 'linear') {
    throw usageError(`the lbfgs optimizer trains only the linear head (got head ${head}); use adamw`);
  }
  const applicable = applicableKeys(head, optimizer);
  for (const key of OPTION_KEYS) {
    if (options[key] !== undefined && !applicable.includes(key)) {
      reporter.warn(`option ${key} has no effect on a ${head} head${head === 'linear' ? ` trained with ${optimizer}` : ''}`);
    }
  }

  const resolved: ResolvedFitOptions = {
    head,
    standardize: options.standardize ?? true,
    seed: options.seed ?? FIT_DEFAULTS.seed,
  };
  if (typeof resolved.standardize !== 'boolean') throw usageError('standardize must be true or false');
  if (!Number.isSafeInteger(resolved.seed) || resolved.seed < 0) {
    throw usageError(`seed must be a non-negative integer, got ${resolved.seed}`);
  }
  if (head === 'knn') {
    resolved.k = Math.min(integerOption('k', options.k ?? FIT_DEFAULTS.knn.k, 1), n);
    return resolved;
  }
  if (head === 'centroid') return resolved;

  resolved.optimizer = optimizer;
  const defaultSmoothing = optimizer === 'lbfgs' ? FIT_DEFAULTS.lbfgs.labelSmoothing : FIT_DEFAULTS.labelSmoothing;
  resolved.labelSmoothing = numberOption('labelSmoothing', options.labelSmoothing ?? defaultSmoothing, 0, 1, true);
  resolved.classWeights = classWeightsOption(options.classWeights ?? FIT_DEFAULTS.classWeights, train.numClasses);
  if (optimizer === 'lbfgs') {
    resolved.epochs = integerOption('epochs', options.epochs ?? FIT_DEFAULTS.lbfgs.maxIterations, 1);
    const defaultL2 = FIT_DEFAULTS.lbfgs.weightDecayTimesRows / n;
    resolved.weightDecay = numberOption('weightDecay', options.weightDecay ?? defaultL2, 0, Infinity);
    resolved.tolerance = numberOption('tolerance', options.tolerance ?? FIT_DEFAULTS.lbfgs.tolerance, 0, Infinity);
    if (resolved.tolerance <= 0) throw usageError('tolerance must be positive');
    return resolved;
  }

  const headDefaults = head === 'mlp' ? FIT_DEFAULTS.mlp : FIT_DEFAULTS.linear;
  resolved.batchSize = integerOption('batchSize', options.batchSize ?? FIT_DEFAULTS.batchSize, 1);
  const stepsPerEpoch = Math.ceil(n / Math.min(resolved.batchSize, n));
  const defaultEpochs = Math.min(
    FIT_DEFAULTS.maxEpochs,
    Math.max(FIT_DEFAULTS.minEpochs, Math.ceil(FIT_DEFAULTS.targetSteps / stepsPerEpoch)),
  );
  resolved.epochs = integerOption('epochs', options.epochs ?? defaultEpochs, 1);
  resolved.lr = numberOption('lr', options.lr ?? headDefaults.lr, 0, Infinity);
  if (resolved.lr <= 0) throw usageError('lr must be positive');
  resolved.weightDecay = numberOption('weightDecay', options.weightDecay ?? headDefaults.weightDecay, 0, Infinity);
  if (resolved.lr * resolved.weightDecay >= 1) {
    throw usageError(`lr × weightDecay must be below 1 (each step multiplies weights by 1 − lr·weightDecay)`);
  }
  resolved.schedule = options.schedule ?? FIT_DEFAULTS.schedule;
  if (!SCHEDULES.includes(resolved.schedule)) {
    throw usageError(`unknown schedule ${JSON.stringify(resolved.schedule)} (expected one of ${SCHEDULES.join(', ')})`);
  }
  const defaultWarmup =
    resolved.schedule === 'one-cycle'
      ? FIT_DEFAULTS.oneCycleWarmupFraction
      : resolved.schedule === 'cosine'
        ? FIT_DEFAULTS.warmupFraction
        : 0;
  resolved.warmupFraction = numberOption('warmupFraction', options.warmupFraction ?? defaultWarmup, 0, 1, true);
  resolved.patience = integerOption('patience', options.patience ?? FIT_DEFAULTS.patience, 0);
  if (head === 'mlp') {
    resolved.hiddenUnits = integerOption('hiddenUnits', options.hiddenUnits ?? FIT_DEFAULTS.mlp.hiddenUnits, 1);
    resolved.dropout = numberOption('dropout', options.dropout ?? FIT_DEFAULTS.mlp.dropout, 0, 1, true);
    resolved.activation = options.activation ?? FIT_DEFAULTS.mlp.activation;
    if (!ACTIVATIONS.includes(resolved.activation)) {
      throw usageError(`unknown activation ${JSON.stringify(resolved.activation)} (expected one of ${ACTIVATIONS.join(', ')})`);
    }
  }
  return resolved;
}

function integerOption(name: string, value: number, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw usageError(`${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function numberOption(name: string, value: number, min: number, max: number, maxExclusive = false): number {
  const tooHigh = maxExclusive ? value >= max : value > max;
  if (typeof value !== 'number' || Number.isNaN(value) || value < min || tooHigh) {
    const range = max === Infinity ? `>= ${min}` : `in [${min}, ${max}${maxExclusive ? ')' : ']'}`;
    throw usageError(`${name} must be a number ${range}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function classWeightsOption(value: FitOptions['classWeights'], numClasses: number): 'balanced' | 'none' | number[] {
  if (value === 'balanced' || value === 'none') return value;
  if (!Array.isArray(value) || value.length !== numClasses) {
    throw usageError(`classWeights must be 'balanced', 'none' or ${numClasses} numbers (one per class)`);
  }
  if (value.some((w) => typeof w !== 'number' || !Number.isFinite(w) || w < 0) || !value.some((w) => w > 0)) {
    throw usageError('classWeights must be finite, non-negative, and not all zero');
  }
  return [...value];
}

function allFinite(values: Float64Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}

function percent(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}
