/**
 * One project's training: a run at a time, in this process, reported as events (progress of each
 * stage, every epoch's losses and accuracies, log lines, state changes) that the page follows by
 * server-sent events; cancelled by making the run's own progress reporter throw at its next step.
 * The trained model is saved as an ordinary model folder in `<project>/.studio/model` (with its
 * report and held-out predictions) and the run's outcome in `.studio/training.json`, both atomically,
 * so a restart finds the last model and its numbers; a run the studio was stopped in is reported as
 * interrupted, and the model before it is still there.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { strToU8, zipSync, type Zippable } from 'fflate';
import { MANIFEST_FILE } from '../artifacts/model-folder.js';
import { Classifier } from '../classifier/classifier.js';
import { TextClassifier } from '../classifier/text-classifier.js';
import type { ClassificationMetrics } from '../evaluate/metrics.js';
import { exportClassifier, type ExportResult } from '../export/onnx-export.js';
import { HttpError } from '../serve/inputs.js';
import { writeFileAtomic } from '../util/atomic.js';
import { messageOf } from '../util/errors.js';
import type { EpochDetail, ProgressTask, Reporter } from '../util/progress.js';
import { backboneChoices } from './backbones.js';
import type { Project } from './project-store.js';

export type TrainState = 'idle' | 'running' | 'done' | 'failed';
export const HEADS = ['linear', 'mlp', 'knn', 'centroid'] as const;

export interface TrainSettings {
  backbone: string;
  head: (typeof HEADS)[number];
  /** Augmented views per training example (0: none). */
  augment: number;
  /** Backbone blocks fine-tuned before the head is fitted (image backbones), or none. */
  unfreeze?: number | 'all';
}

export interface TrainStatus {
  state: TrainState;
  settings?: TrainSettings;
  startedAt?: string;
  finishedAt?: string;
  /** The held-out metrics of the model this run produced. */
  metrics?: { validation?: ClassificationMetrics; test?: ClassificationMetrics };
  error?: string;
  cancelled?: boolean;
  /** Per epoch, per stage ("train linear head", "fine-tune …"), for the curves. */
  history?: { stage: string; epochs: EpochDetail[] }[];
}

export type TrainEvent =
  | { type: 'state'; status: TrainStatus }
  | { type: 'progress'; label: string; done: number; total: number; unit: string }
  | { type: 'epoch'; stage: string; detail: EpochDetail }
  | { type: 'log'; level: 'info' | 'warn'; message: string };

export interface TrainingContext {
  cacheDir?: string;
  /** Backbones given on the command line, offered first. */
  extraBackbones: string[];
  hubCache?: string;
  hub?: { offline?: boolean; token?: string };
}

const STATUS_FILE = 'training.json';
const MODEL_DIR = 'model';
/** Progress events per stage at most this often (a feature extraction ticks once per input). */
const PROGRESS_INTERVAL_MS = 100;

class Cancelled extends Error {}

export class ProjectTraining {
  private status: TrainStatus = { state: 'idle' };
  private events: TrainEvent[] = [];
  private readonly listeners = new Set<(event: TrainEvent) => void>();
  private cancelRequested = false;
  private classifier?: Promise<Classifier | undefined>;
  private exported?: { createdAt: string; result: Promise<ExportResult> };
  private running?: Promise<void>;

  private constructor(
    readonly project: Project,
    private readonly context: TrainingContext,
  ) {}

  /** The project's training as the last run left it on disk. */
  static async restore(project: Project, context: TrainingContext): Promise<ProjectTraining> {
    const training = new ProjectTraining(project, context);
    const saved = await readFile(join(project.studioDir, STATUS_FILE), 'utf8').then((text) => JSON.parse(text) as TrainStatus, () => undefined);
    if (saved?.state === 'running') {
      training.status = { ...saved, state: 'failed', error: 'interrupted: the studio stopped while this run was training' };
      await training.persist();
    } else if (saved) training.status = saved;
    return training;
  }

  get modelDir(): string {
    return join(this.project.studioDir, MODEL_DIR);
  }

  current(): TrainStatus {
    return this.status;
  }

  /** Checks the request and the data, then starts training in the background. */
  async start(body: unknown): Promise<TrainStatus> {
    if (this.status.state === 'running') throw new HttpError(409, 'already_training', 'this project is training already; cancel it first');
    const settings = await this.settingsOf(body);
    const counts = await this.project.counts();
    const classes = this.project.classes;
    if (classes.length < 2) throw new HttpError(400, 'too_few_classes', `a classifier needs at least two classes; this project has ${classes.length}`);
    const short = classes.filter((_, i) => counts[i]! < 2);
    if (short.length) {
      throw new HttpError(400, 'too_few_examples', `every class needs at least 2 examples (one is held out to measure accuracy honestly); add more to ${short.map((c) => `"${c}"`).join(', ')}`);
    }
    this.cancelRequested = false;
    this.events = [];
    this.setStatus({ state: 'running', settings, startedAt: new Date().toISOString(), history: [] });
    await this.persist();
    this.running = this.run(settings);
    return this.status;
  }

  cancel(): TrainStatus {
    if (this.status.state !== 'running') throw new HttpError(409, 'not_training', 'this project is not training');
    this.cancelRequested = true;
    this.log('info', 'cancelling at the next step…');
    return this.status;
  }

  /** Replays the current run's events, then follows it; returns the unsubscribe function. */
  subscribe(listener: (event: TrainEvent) => void): () => void {
    listener({ type: 'state', status: this.status });
    for (const event of this.events) if (event.type !== 'state') listener(event);
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The last trained model, loaded once (undefined when there is none yet). */
  model(): Promise<Classifier | undefined> {
    this.classifier ??= (async () => {
      if (!(await stat(join(this.modelDir, MANIFEST_FILE)).catch(() => undefined))) return undefined;
      return Classifier.load(this.modelDir, { cacheDir: this.context.cacheDir, hub: this.context.hub });
    })();
    // A failed load is not remembered: the next request tries again.
    this.classifier.catch(() => (this.classifier = undefined));
    return this.classifier;
  }

  async requireModel(): Promise<Classifier> {
    const model = await this.model();
    if (!model) throw new HttpError(409, 'not_trained', `project "${this.project.id}" has no trained model yet; POST /api/projects/${this.project.id}/train first`);
    return model;
  }

  /** The one-file ONNX export of the current model (and its metadata), made once per model. */
  async exportOnnx(): Promise<ExportResult> {
    const model = await this.requireModel();
    if (this.exported?.createdAt !== model.manifest.createdAt) {
      const result = exportClassifier(model);
      this.exported = { createdAt: model.manifest.createdAt, result };
      result.catch(() => (this.exported = undefined));
    }
    return this.exported.result;
  }

  /** The model folder as a zip, every file under `<project>-model/`. */
  async modelZip(): Promise<Uint8Array> {
    await this.requireModel();
    const files: Zippable = {};
    for (const entry of await readdir(this.modelDir, { withFileTypes: true })) {
      if (entry.isFile()) files[`${this.project.id}-model/${entry.name}`] = new Uint8Array(await readFile(join(this.modelDir, entry.name)));
    }
    files[`${this.project.id}-model/README.txt`] = strToU8(
      `A headstart model folder, trained in headstart studio on project "${this.project.name}".\n` +
        `Predict: npx headstart predict ${this.project.id}-model <file>\nServe: npx headstart serve ${this.project.id}-model\n` +
        `Export: npx headstart export ${this.project.id}-model\n`,
    );
    // Model weights barely compress; level 1 keeps the zip quick.
    return zipSync(files, { level: 1 });
  }

  /** Waits for the current run (tests, shutdown). */
  async settled(): Promise<void> {
    await this.running;
  }

  async dispose(): Promise<void> {
    this.cancelRequested = true;
    await this.running;
    const model = await this.classifier?.catch(() => undefined);
    await model?.dispose();
  }

  private async settingsOf(body: unknown): Promise<TrainSettings> {
    const given = (body ?? {}) as Record<string, unknown>;
    if (typeof given !== 'object' || Array.isArray(given)) throw new HttpError(400, 'bad_json', 'expected {backbone?, head?, augment?, unfreeze?}');
    const choices = await backboneChoices(this.project.task, this.context.extraBackbones, this.context.hubCache);
    const backbone = given.backbone ?? choices.find((choice) => choice.default)?.id ?? choices[0]!.id;
    if (typeof backbone !== 'string' || !choices.some((choice) => choice.id === backbone)) {
      throw new HttpError(400, 'unknown_backbone', `backbone "${String(backbone).slice(0, 100)}" is not offered for ${this.project.task}; choose one of ${choices.map((c) => c.id).join(', ')} (start the studio with --backbone <ref> to add one)`);
    }
    const head = given.head ?? 'linear';
    if (!HEADS.includes(head as TrainSettings['head'])) throw new HttpError(400, 'bad_head', `head must be one of ${HEADS.join(', ')}`);
    const augment = given.augment ?? 0;
    if (!Number.isInteger(augment) || (augment as number) < 0 || (augment as number) > 16) throw new HttpError(400, 'bad_augment', 'augment is the number of augmented views per example, 0 to 16');
    const unfreeze = given.unfreeze ?? undefined;
    if (unfreeze !== undefined && unfreeze !== null && unfreeze !== 'all' && !(Number.isInteger(unfreeze) && (unfreeze as number) >= 1)) {
      throw new HttpError(400, 'bad_unfreeze', 'unfreeze is a number of blocks (1 or more) or "all"');
    }
    if (unfreeze && this.project.task !== 'image') throw new HttpError(400, 'bad_unfreeze', 'unfreeze fine-tunes image backbones only');
    if (augment && this.project.task === 'text') throw new HttpError(400, 'bad_augment', 'text projects have no augmentation');
    return { backbone, head: head as TrainSettings['head'], augment: augment as number, ...(unfreeze ? { unfreeze: unfreeze as number | 'all' } : {}) };
  }

  private async run(settings: TrainSettings): Promise<void> {
    const reporter = this.reporter();
    const task = this.project.task;
    let trained: Classifier | undefined;
    try {
      const common = {
        data: this.project.dir,
        backbone: settings.backbone,
        head: settings.head,
        cacheDir: this.context.cacheDir,
        backboneOptions: { hub: this.context.hub },
        reporter,
      };
      trained =
        task === 'text'
          ? await TextClassifier.train({ ...common, baseline: false })
          : await Classifier.train({
              ...common,
              task,
              augment: settings.augment,
              fineTune: settings.unfreeze ? { unfreeze: settings.unfreeze } : undefined,
            });
      if (this.cancelRequested) throw new Cancelled();
      this.log('info', 'saving the model and its report…');
      await trained.save(this.modelDir, { reporter });
      const previous = await this.classifier?.catch(() => undefined);
      this.classifier = Promise.resolve(trained);
      await previous?.dispose();
      this.setStatus({ ...this.status, state: 'done', finishedAt: new Date().toISOString(), metrics: trained.metrics });
    } catch (error) {
      await trained?.dispose();
      const cancelled = error instanceof Cancelled;
      this.setStatus({
        ...this.status,
        state: 'failed',
        finishedAt: new Date().toISOString(),
        error: cancelled ? 'cancelled' : messageOf(error),
        ...(cancelled ? { cancelled: true } : {}),
      });
    }
    await this.persist().catch((error) => this.log('warn', `could not record the training state: ${messageOf(error)}`));
  }

  /** A Reporter that turns progress into events, and throws at the next step once cancelled. */
  private reporter(): Reporter {
    const check = () => {
      if (this.cancelRequested) throw new Cancelled();
    };
    return {
      info: (message) => this.log('info', message),
      warn: (message) => this.log('warn', message),
      task: (label, total, unit = 'items'): ProgressTask => {
        check();
        let done = 0;
        let last = 0;
        const stage = { stage: label, epochs: [] as EpochDetail[] };
        this.status.history?.push(stage);
        this.emit({ type: 'progress', label, done, total, unit });
        return {
          tick: (steps = 1, detail) => {
            done += steps;
            if (detail) {
              const epoch = { epoch: detail.epoch, trainLoss: detail.trainLoss, trainAccuracy: detail.trainAccuracy, valLoss: detail.valLoss, valAccuracy: detail.valAccuracy };
              stage.epochs.push(epoch);
              this.emit({ type: 'epoch', stage: label, detail: epoch });
            }
            const now = performance.now();
            if (now - last >= PROGRESS_INTERVAL_MS || done >= total) {
              last = now;
              this.emit({ type: 'progress', label, done, total, unit });
            }
            check();
          },
          done: (summary) => {
            // Early stopping ends a task before its total: the bar keeps the count it reached.
            this.emit({ type: 'progress', label, done, total, unit });
            if (summary) this.log('info', `${label}: ${summary}`);
          },
        };
      },
    };
  }

  private log(level: 'info' | 'warn', message: string): void {
    this.emit({ type: 'log', level, message });
  }

  private setStatus(status: TrainStatus): void {
    this.status = status;
    this.emit({ type: 'state', status });
  }

  private emit(event: TrainEvent): void {
    // The backlog a late subscriber replays; progress is superseded, so only the latest per stage is kept.
    if (event.type === 'progress') {
      const at = this.events.findIndex((e) => e.type === 'progress' && e.label === event.label);
      if (at >= 0) this.events.splice(at, 1);
    }
    if (event.type !== 'state') this.events.push(event);
    if (this.events.length > 5000) this.events.splice(0, this.events.length - 5000);
    for (const listener of this.listeners) listener(event);
  }

  private async persist(): Promise<void> {
    await writeFileAtomic(join(this.project.studioDir, STATUS_FILE), `${JSON.stringify(this.status)}\n`);
  }
}
