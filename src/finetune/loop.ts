/**
 * The epoch loop around a `TrainingSession`: seeded shuffles, soft targets, the learning-rate
 * schedule per step, validation every epoch, early stopping on the validation accuracy or loss,
 * and the best epoch's weights kept.
 */
import { ort } from '../backbones/onnx-session.js';
import type { TrainingSession } from '../autodiff/training-session.js';
import { makeSchedule, type ScheduleKind } from '../train/schedule.js';
import { usageError } from '../util/errors.js';
import type { Reporter } from '../util/progress.js';
import { Rng } from '../util/rng.js';

/** Examples as rows: each row concatenates the per-example values of the graph's batch inputs. */
export interface ExampleRows {
  data: Float32Array;
  labels: Int32Array;
  /** The item each row came from and its augmented view (0 = plain). */
  itemOfRow: Int32Array;
  viewOfRow: Int32Array;
}

export interface BatchInput {
  name: string;
  /** Per-example dims. */
  dims: number[];
  /** Default float32; int64 inputs (token ids) are held as float32 in the rows and cast here. */
  dtype?: 'float32' | 'int64';
}

export interface LoopOptions {
  epochs: number;
  batchSize: number;
  /** Peak learning rate of the schedule (each parameter's own scale applies on top). */
  lr: number;
  schedule: ScheduleKind;
  warmupFraction: number;
  labelSmoothing: number;
  /** Epochs without a better validation score before stopping (0: never). */
  patience: number;
  /**
   * What "better" means: 'accuracy' (higher validation accuracy, ties to the lower loss) or 'loss'.
   * Default 'loss'.
   */
  selectBy?: 'accuracy' | 'loss';
  seed: number;
}

export interface EpochStats {
  epoch: number;
  lr: number;
  trainLoss: number;
  trainAccuracy: number;
  /** Without validation data: absent. */
  valLoss?: number;
  valAccuracy?: number;
  seconds: number;
}

export interface LoopResult {
  history: EpochStats[];
  bestEpoch: number;
  stoppedEarly: boolean;
  /** The weights of the best epoch (by `selectBy` on validation; the last epoch without validation data). */
  best: Map<string, Float32Array>;
  steps: number;
}

const EVALUATION_BATCH = 64;

export function batchTensors(inputs: BatchInput[], rows: ExampleRows, rowIndices: number[]): Record<string, ort.Tensor> {
  const sizes = inputs.map((input) => input.dims.reduce((a, b) => a * b, 1));
  const rowSize = sizes.reduce((a, b) => a + b, 0);
  const tensors: Record<string, ort.Tensor> = {};
  let offset = 0;
  inputs.forEach((input, t) => {
    const size = sizes[t]!;
    const data = new Float32Array(rowIndices.length * size);
    rowIndices.forEach((row, i) => data.set(rows.data.subarray(row * rowSize + offset, row * rowSize + offset + size), i * size));
    const dims = [rowIndices.length, ...input.dims];
    tensors[input.name] = input.dtype === 'int64' ? new ort.Tensor('int64', BigInt64Array.from(data, (v) => BigInt(v)), dims) : new ort.Tensor('float32', data, dims);
    offset += size;
  });
  return tensors;
}

/** Label-smoothed one-hot targets: (1 − ε) on the label, ε/K spread over all classes. */
export function smoothedTargets(labels: ArrayLike<number>, classes: number, smoothing: number): Float32Array {
  const targets = new Float32Array(labels.length * classes).fill(smoothing / classes);
  for (let i = 0; i < labels.length; i++) targets[i * classes + labels[i]!]! += 1 - smoothing;
  return targets;
}

/** Mean log loss (no smoothing) and accuracy of logits against labels. */
export function scoreLogits(logits: Float32Array, labels: ArrayLike<number>, classes: number): { loss: number; accuracy: number } {
  let loss = 0;
  let correct = 0;
  for (let r = 0; r < labels.length; r++) {
    const row = logits.subarray(r * classes, (r + 1) * classes);
    let max = -Infinity;
    let argmax = 0;
    row.forEach((v, k) => {
      if (v > max) {
        max = v;
        argmax = k;
      }
    });
    const logSum = Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
    loss += logSum - row[labels[r]!]!;
    if (argmax === labels[r]) correct++;
  }
  return { loss: loss / labels.length, accuracy: correct / labels.length };
}

/** Logits of every row, computed in batches by `run` (a training session's `evaluate`, or any session). */
export async function evaluateRows(run: (batch: Record<string, ort.Tensor>) => Promise<Float32Array>, inputs: BatchInput[], rows: ExampleRows, classes: number): Promise<Float32Array> {
  const n = rows.labels.length;
  const logits = new Float32Array(n * classes);
  for (let start = 0; start < n; start += EVALUATION_BATCH) {
    const indices = Array.from({ length: Math.min(EVALUATION_BATCH, n - start) }, (_, i) => start + i);
    logits.set(await run(batchTensors(inputs, rows, indices)), start * classes);
  }
  return logits;
}

export async function trainEpochs(
  session: TrainingSession,
  inputs: BatchInput[],
  train: ExampleRows,
  validation: ExampleRows | undefined,
  classes: number,
  options: LoopOptions,
  reporter: Reporter,
  label: string,
): Promise<LoopResult> {
  // One row per item per epoch, cycling through its augmented views.
  const rowsOfItem = new Map<number, number[]>();
  train.itemOfRow.forEach((item, row) => {
    const list = rowsOfItem.get(item) ?? [];
    list[train.viewOfRow[row]!] = row;
    rowsOfItem.set(item, list);
  });
  const items = [...rowsOfItem.keys()].sort((a, b) => a - b);
  const batchSize = Math.min(options.batchSize, items.length);
  const stepsPerEpoch = Math.ceil(items.length / batchSize);
  const schedule = makeSchedule(options.schedule, options.lr, options.epochs * stepsPerEpoch, options.warmupFraction);
  const rng = new Rng(options.seed);
  const history: EpochStats[] = [];
  let best: { loss: number; accuracy: number; epoch: number; weights: Map<string, Float32Array> } | undefined;
  const better = (scores: { loss: number; accuracy: number }) =>
    !best || (options.selectBy === 'accuracy' ? scores.accuracy > best.accuracy || (scores.accuracy === best.accuracy && scores.loss < best.loss) : scores.loss < best.loss);
  let stoppedEarly = false;
  let step = 0;
  const task = reporter.task(label, options.epochs, 'epochs');
  for (let epoch = 1; epoch <= options.epochs; epoch++) {
    const started = performance.now();
    const order = rng.shuffle([...items]);
    let lossSum = 0;
    let correct = 0;
    let lr = 0;
    for (let start = 0; start < order.length; start += batchSize) {
      const batchItems = order.slice(start, start + batchSize);
      const rows = batchItems.map((item) => {
        const views = rowsOfItem.get(item)!.filter((row) => row !== undefined);
        return views[(epoch - 1) % views.length]!;
      });
      const labels = rows.map((row) => train.labels[row]!);
      lr = schedule(step++);
      const result = await session.step(
        batchTensors(inputs, train, rows),
        new ort.Tensor('float32', smoothedTargets(labels, classes, options.labelSmoothing), [rows.length, classes]),
        lr,
      );
      if (!Number.isFinite(result.loss)) throw usageError(`training diverged in epoch ${epoch} (loss ${result.loss}); lower the learning rate (lr = ${options.lr})`);
      lossSum += result.loss * rows.length;
      correct += Math.round(scoreLogits(result.logits, labels, classes).accuracy * rows.length);
    }
    const record: EpochStats = { epoch, lr, trainLoss: lossSum / order.length, trainAccuracy: correct / order.length, seconds: 0 };
    if (validation) {
      const scores = scoreLogits(await evaluateRows((batch) => session.evaluate(batch), inputs, validation, classes), validation.labels, classes);
      record.valLoss = scores.loss;
      record.valAccuracy = scores.accuracy;
      if (better(scores)) best = { ...scores, epoch, weights: session.snapshot() };
    } else if (epoch === options.epochs) best = { loss: record.trainLoss, accuracy: record.trainAccuracy, epoch, weights: session.snapshot() };
    record.seconds = (performance.now() - started) / 1000;
    history.push(record);
    task.tick(1, record);
    if (best && options.patience > 0 && epoch - best.epoch >= options.patience && epoch < options.epochs) {
      stoppedEarly = true;
      break;
    }
  }
  const bestStats = history[best!.epoch - 1]!;
  task.done(
    validation
      ? `best epoch ${best!.epoch}/${history.length}${stoppedEarly ? ' (stopped early)' : ''}, val loss ${bestStats.valLoss!.toFixed(4)}, val accuracy ${(100 * bestStats.valAccuracy!).toFixed(1)}%`
      : `${history.length} epochs, train loss ${bestStats.trainLoss.toFixed(4)}`,
  );
  return { history, bestEpoch: best!.epoch, stoppedEarly, best: best!.weights, steps: step };
}
