/**
 * The job-queue section of `npm run bench`: feature extraction through BullMQ on a local
 * redis-server with 1 and 2 `headstart worker` processes, against the same extraction in-process.
 * Prints only; nothing is asserted. Runs alone with `npx tsx bench/queue.ts`.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openImageBackbone } from '../src/backbones/resolve.js';
import type { ImageBackbone } from '../src/backbones/image-backbone.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { FeatureCache } from '../src/features/cache.js';
import { extractFeatures, type ExtractableItem } from '../src/features/extract.js';
import { queueExtraction } from '../src/queue/coordinator.js';
import { silentReporter } from '../src/util/progress.js';
import { spawnCli, startRedis, stopProcess, type CliProcess } from '../test/helpers/queue.js';

const SHARED = fileURLToPath(new URL('../../shared/', import.meta.url));
const HYMENOPTERA = join(SHARED, 'data/images/hymenoptera');
const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');
const IMAGES = 128;
const SHARD = 16;

const line = (label: string, value: string, note = '') => console.log(`${label.padEnd(58)} ${value.padStart(14)}  ${note}`);
const section = (title: string) => console.log(`\n## ${title}`);

/** Seconds of the backbone's forward alone over `n` inputs, batch 16 (no decode, no cache). */
async function forwardSeconds(backbone: ImageBackbone, n: number): Promise<number> {
  const { width, height } = backbone.preprocessing;
  const batch = Array.from({ length: 16 }, (_, i) => new Float32Array(3 * width * height).fill(0.01 * i));
  await backbone.forward(batch);
  const start = performance.now();
  for (let done = 0; done < n; done += 16) await backbone.forward(batch);
  return (performance.now() - start) / 1000;
}

export async function queueBench(): Promise<void> {
  section(`Feature extraction on a BullMQ queue (local redis-server, MobileNetV2 α=0.35, ${IMAGES} hymenoptera JPEGs, ${SHARD} a job, inputs by path)`);
  const root = await mkdtemp(join(tmpdir(), 'headstart-bench-queue-'));
  const backboneCache = join(root, 'backbones');
  const dataset = await readImageFolder(HYMENOPTERA);
  const items: ExtractableItem<Uint8Array>[] = [...dataset.train, ...dataset.validation].slice(0, IMAGES);
  const backbone = await openImageBackbone(MOBILENET_035, { cacheDir: backboneCache });
  await mkdir(join(root, 'redis'));
  const redis = await startRedis(join(root, 'redis'));
  const workers: CliProcess[] = [];
  let run = 0;
  /** Wall seconds to fill a fresh cache for all items, in-process or through the queue. */
  const timed = async (queued: boolean) => {
    const cache = new FeatureCache(join(root, `cache-${run++}`), FeatureCache.namespaceOf(backbone), backbone.reference.featureDim);
    const start = performance.now();
    await extractFeatures(backbone, items, { cache, remote: queued ? queueExtraction({ url: redis.url, shardSize: SHARD, pollSeconds: 0.5 }) : undefined });
    return (performance.now() - start) / 1000;
  };
  try {
    await timed(false); // warm: page cache, onnxruntime
    const local = (await timed(false) + (await timed(false))) / 2;
    const forward = await forwardSeconds(backbone, IMAGES);
    line('in-process extraction (read + decode + forward + cache)', `${(IMAGES / local).toFixed(1)} img/s`, `forward alone ${((forward / IMAGES) * 1000).toFixed(1)} ms/img`);
    const rates: Record<number, number> = {};
    for (const count of [1, 2]) {
      while (workers.length < count) {
        const worker = spawnCli(['worker', '--queue', redis.url, '--cache-dir', backboneCache, '--quiet']);
        workers.push(worker);
      }
      // Workers open the backbone on their first job: a warm-up run before timing.
      await new Promise((r) => setTimeout(r, 3000));
      await timed(true);
      const seconds = await timed(true);
      rates[count] = IMAGES / seconds;
      line(`${count} worker${count > 1 ? 's' : ''} (separate processes, 2 onnxruntime threads each)`, `${rates[count]!.toFixed(1)} img/s`, `${(rates[count]! / (IMAGES / local)).toFixed(2)}× in-process`);
      if (count === 1) {
        const overhead = (seconds - local) / IMAGES;
        line('queue overhead per image (1 worker − in-process)', `${(overhead * 1000).toFixed(2)} ms/img`, `${((overhead / (forward / IMAGES)) * 100).toFixed(1)} % of the forward (target ≤ 5 %)`);
      }
    }
    console.log('  (2 cores shared by every process here: a second worker competes with the first for them, so this shows the queue\'s cost, not scaling; numbers are noisy, read the ratios)');
  } finally {
    await Promise.all(workers.map((worker) => stopProcess(worker)));
    await redis.stop();
    await backbone.dispose();
    await rm(root, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await queueBench();
