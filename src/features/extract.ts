import type { Backbone, AugmentationView } from '../backbones/backbone.js';
import type { SkippedInput } from '../data/dataset.js';
import { messageOf, usageError } from '../util/errors.js';
import { hashJson, sha256 } from '../util/hash.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { type FeatureMatrix, isSparse, type SparseRow, sparseRow, sparseRows } from './sparse.js';

/** Where extraction looks vectors up and puts them: the on-disk FeatureCache, or a queue worker's collector. */
export interface FeatureStore {
  get(key: string): Promise<Float32Array | undefined>;
  put(key: string, vector: Float32Array): Promise<void>;
}

/**
 * Computes elsewhere (a job queue's workers) the vectors `cache` lacks and puts them there, before
 * extraction proper reads them back: so the result is the one in-process extraction gives.
 */
export interface RemoteExtraction {
  fill<Input extends Uint8Array | string, Prepared>(
    backbone: Backbone<Input, Prepared>,
    items: ExtractableItem<Input>[],
    request: { cache: FeatureStore; views?: AugmentedViews; label: string; reporter: Reporter },
  ): Promise<{ vectors: number }>;
}

export interface ExtractableItem<Input> {
  source: string;
  load(): Promise<Input>;
}

export interface AugmentedViews {
  /** Augmented views per item, in addition to the plain one. */
  count: number;
  seed: number;
  /** The modality's augmentation settings; part of the cache key. */
  settings?: unknown;
}

export interface ExtractOptions {
  cache?: FeatureStore;
  /** Have a job queue compute what the cache lacks first (requires `cache`). */
  remote?: RemoteExtraction;
  reporter?: Reporter;
  /** Label for the progress bar. */
  label?: string;
  views?: AugmentedViews;
}

export interface ExtractedFeatures {
  /** rows × dim, row-major; sparse rows when the backbone's are. */
  features: FeatureMatrix;
  dim: number;
  /** For each row, the index of the item it came from (items that failed have no rows). */
  itemOfRow: Int32Array;
  /** For each row, 0 for the plain view, 1… for augmented views. */
  viewOfRow: Int32Array;
  skipped: SkippedInput[];
  cacheHits: number;
  /** Vectors computed by this call, in this process or (`computedRemotely` of them) by queue workers. */
  computed: number;
  computedRemotely: number;
  seconds: number;
}

interface Row<Prepared> {
  item: number;
  view: number;
  key: string;
  vector?: Float32Array | SparseRow;
  prepared?: Prepared;
}

/**
 * Runs a backbone over items in batches. While the backbone runs one batch, the next is read,
 * hashed, looked up in the cache and decoded, so decoding overlaps inference. Inputs that cannot
 * be read or decoded are skipped and reported, never fatal.
 */
export async function extractFeatures<Input extends Uint8Array | string, Prepared>(
  backbone: Backbone<Input, Prepared>,
  items: ExtractableItem<Input>[],
  options: ExtractOptions = {},
): Promise<ExtractedFeatures> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  let computedRemotely = 0;
  if (options.remote) {
    if (!options.cache) throw usageError('a job queue delivers features through the feature cache, which is turned off');
    ({ vectors: computedRemotely } = await options.remote.fill(backbone, items, { cache: options.cache, views: options.views, label: options.label ?? 'features', reporter }));
  }
  const dim = backbone.reference.featureDim;
  // Sparse rows (TF-IDF) are cheaper to compute again than to store densely in the cache.
  const cache = backbone.sparse ? undefined : options.cache;
  const viewsPerItem = 1 + (options.views?.count ?? 0);
  const skipped: SkippedInput[] = [];
  const failed = new Set<number>();
  const task = reporter.task(options.label ?? 'features', items.length * viewsPerItem, viewsPerItem > 1 ? 'views' : 'inputs');
  let cacheHits = 0;
  let computed = 0;

  const fail = (item: number, error: unknown) => {
    if (failed.has(item)) return;
    failed.add(item);
    skipped.push({ source: items[item]!.source, reason: messageOf(error) });
  };

  /** Stage 1: read, hash, look up, and decode what the cache lacks. */
  const load = async (first: number, last: number): Promise<Row<Prepared>[]> => {
    const rows: Row<Prepared>[] = [];
    await Promise.all(
      range(first, last).map(async (item) => {
        let input: Input;
        try {
          input = await items[item]!.load();
        } catch (error) {
          fail(item, error);
          return;
        }
        const contentKey = sha256(input);
        const keys = viewKeys(contentKey, options.views);
        for (let view = 0; view < viewsPerItem; view++) {
          const key = keys[view]!;
          const row: Row<Prepared> = { item, view, key, vector: await cache?.get(key) };
          rows.push(row);
          if (row.vector) continue;
          const augmentation: AugmentationView | undefined =
            view === 0 ? undefined : { index: view, seed: seedOf(contentKey, options.views!.seed, view), settings: options.views!.settings };
          try {
            row.prepared = await backbone.prepare(input, augmentation);
          } catch (error) {
            fail(item, error);
          }
        }
      }),
    );
    return rows.filter((row) => !failed.has(row.item)).sort((a, b) => a.item - b.item || a.view - b.view);
  };

  /** Stage 2: run the backbone on what was decoded, and remember the results. */
  const run = async (rows: Row<Prepared>[]) => {
    const todo = rows.filter((row) => !row.vector);
    for (let start = 0; start < todo.length; start += backbone.batchSize) {
      const batch = todo.slice(start, start + backbone.batchSize);
      const out = await backbone.forward(batch.map((row) => row.prepared!));
      batch.forEach((row, i) => {
        row.vector = isSparse(out) ? sparseRow(out, i) : out.slice(i * dim, (i + 1) * dim);
        row.prepared = undefined;
      });
      if (cache) await Promise.all(batch.map((row) => cache.put(row.key, row.vector as Float32Array)));
    }
    computed += todo.length;
    cacheHits += rows.length - todo.length;
  };

  const itemsPerStep = Math.max(1, Math.floor(backbone.batchSize / viewsPerItem));
  const done: Row<Prepared>[] = [];
  let next = load(0, Math.min(items.length, itemsPerStep));
  for (let first = 0; first < items.length; first += itemsPerStep) {
    const rows = await next;
    const following = first + itemsPerStep;
    next = following < items.length ? load(following, Math.min(items.length, following + itemsPerStep)) : Promise.resolve([]);
    await run(rows);
    done.push(...rows);
    task.tick(Math.min(itemsPerStep, items.length - first) * viewsPerItem);
  }
  await next;

  const itemOfRow = new Int32Array(done.length);
  const viewOfRow = new Int32Array(done.length);
  done.forEach((row, r) => {
    itemOfRow[r] = row.item;
    viewOfRow[r] = row.view;
  });
  const features: FeatureMatrix = backbone.sparse ? sparseRows(done.map((row) => row.vector as SparseRow), dim) : new Float32Array(done.length * dim);
  if (!isSparse(features)) done.forEach((row, r) => features.set(row.vector as Float32Array, r * dim));
  const seconds = (performance.now() - started) / 1000;
  // What the queue put into the cache was computed for this call, not found there.
  const remote = Math.min(computedRemotely, cacheHits);
  computed += remote;
  cacheHits -= remote;
  task.done(
    `${done.length} vectors (${computed} computed${remote ? `, ${remote} of them by queue workers` : ''}, ${cacheHits} from cache${skipped.length ? `, ${skipped.length} skipped` : ''})`,
  );
  return { features, dim, itemOfRow, viewOfRow, skipped, cacheHits, computed, computedRemotely: remote, seconds };
}

/** The cache key of each view of an input (the plain one first), given its content hash. */
export function viewKeys(contentKey: string, views?: AugmentedViews): string[] {
  const tag = views ? hashJson({ seed: views.seed, settings: views.settings ?? null }).slice(0, 12) : '';
  return Array.from({ length: 1 + (views?.count ?? 0) }, (_, view) => (view === 0 ? contentKey : `${contentKey}-${tag}-${view}`));
}

function range(first: number, last: number): number[] {
  return Array.from({ length: last - first }, (_, i) => first + i);
}

/** A view's seed depends on the content, the run's seed and the view number only: stable across datasets. */
/** The seed of an augmented view (what `prepare` receives), so callers can repeat its geometry on labels (boxes). */
export function seedOf(contentKey: string, seed: number, view: number): number {
  return (parseInt(contentKey.slice(0, 8), 16) ^ Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(view, 0x85ebca6b)) >>> 0;
}
