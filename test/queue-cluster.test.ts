/**
 * Feature extraction on a real Redis with real worker processes: the queued model must be the local
 * one byte for byte, whatever happens to workers and Redis on the way.
 */
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Classifier } from '../src/classifier/classifier.js';
import { openImageBackbone } from '../src/backbones/resolve.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { FeatureCache } from '../src/features/cache.js';
import { queueExtraction } from '../src/queue/coordinator.js';
import { DEFAULT_QUEUE_NAME } from '../src/queue/connection.js';
import { HeadstartError } from '../src/util/errors.js';
import { silentReporter } from '../src/util/progress.js';
import { runCli } from './helpers/cli.js';
import { HYMENOPTERA, SHARED, tempDir } from './helpers/images.js';
import { spawnCli, startRedis, stopProcess, type CliProcess, type RedisServer } from './helpers/queue.js';

const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');
const PER_CLASS = 12;

let root: string;
let data: string;
let redis: RedisServer;
let queue: Queue;
let backboneCache: string;
let localHead: Buffer;
let localCounts: unknown;
const workers: CliProcess[] = [];

const workerName = (worker: CliProcess) => `${hostname()}:${worker.child.pid}`;
const doneLines = (worker: CliProcess) => worker.output().split('\n').filter((line) => /^done /.test(line));

function startWorker(): CliProcess {
  const worker = spawnCli(['worker', '--queue', redis.url, '--cache-dir', backboneCache, '--lock-seconds', '2']);
  workers.push(worker);
  return worker;
}

/** The id of a job `worker` is working on right now (polls Redis). */
async function activeJobOf(worker: CliProcess, timeoutMs = 60_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const job = (await queue.getJobs(['active'])).find((j) => j.processedBy === workerName(worker));
    if (job?.id) return job.id;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`worker ${workerName(worker)} never took a job`);
}

beforeAll(async () => {
  root = await tempDir('headstart-queue-');
  data = join(root, 'data');
  for (const name of ['ants', 'bees']) {
    await mkdir(join(data, name), { recursive: true });
    const files = (await readdir(join(HYMENOPTERA, 'train', name))).sort().slice(0, PER_CLASS);
    for (const file of files) await copyFile(join(HYMENOPTERA, 'train', name, file), join(data, name, file));
  }
  await writeFile(join(data, 'ants', 'broken.jpg'), 'not a JPEG at all');
  redis = await startRedis(await mkdir(join(root, 'redis'), { recursive: true }).then(() => join(root, 'redis')));
  queue = new Queue(DEFAULT_QUEUE_NAME, { connection: { url: redis.url, maxRetriesPerRequest: null } });
  // While Redis restarts, ioredis reports each reconnect attempt; the test's own view of the queue needs none of it.
  queue.on('error', () => {});
  // The reference: the same command without the queue, in this process. Its cache also holds the
  // converted backbone, which the workers then reuse rather than each converting it again.
  backboneCache = join(root, 'local-cache');
  const local = await Classifier.train({ task: 'image', data, backbone: MOBILENET_035, cacheDir: backboneCache });
  await local.save(join(root, 'local'), { report: false });
  localCounts = (local.manifest.training.data as { counts: unknown }).counts;
  await local.dispose();
  localHead = await readFile(join(root, 'local', 'head.bin'));
});

afterAll(async () => {
  await Promise.all(workers.map((worker) => stopProcess(worker, 'SIGKILL')));
  await queue?.close();
  await redis?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

describe('train --queue on worker processes', () => {
  test('three workers, one SIGKILLed in the middle of a job: its job goes to another, the head is byte-identical, the broken file is skipped once', async () => {
    const [victim, ...others] = [startWorker(), startWorker(), startWorker()];
    await Promise.all(workers.map((worker) => worker.waitFor(/waiting for jobs/)));
    const out = join(root, 'queued');
    const coordinator = spawnCli(['train', data, '-b', MOBILENET_035, '--cache-dir', join(root, 'queued-cache'), '--out', out, '--queue', redis.url, '--shard-size', '3', '--no-report', '--json']);
    const stalledJob = await activeJobOf(victim!);
    victim!.child.kill('SIGKILL');
    expect(await coordinator.exited, coordinator.output()).toBe(0);

    expect((await readFile(join(out, 'head.bin'))).equals(localHead)).toBe(true);
    const summary = JSON.parse(coordinator.output().slice(coordinator.output().indexOf('{\n')));
    expect(summary.training.data.counts).toEqual(localCounts);
    expect(summary.skipped.map((s: { source: string }) => s.source)).toEqual([join(data, 'ants', 'broken.jpg')]);
    // Every vector computed once for this run: none lost, none counted twice.
    expect(summary.training.timings.featuresComputed).toBe(2 * PER_CLASS);
    expect(summary.training.timings.featuresFromCache).toBe(0);
    // The killed worker's job was taken over (BullMQ's stalled-job recovery) and finished elsewhere.
    const survivorsDone = others.flatMap(doneLines);
    expect(survivorsDone.some((line) => line.startsWith(`done ${stalledJob}:`))).toBe(true);
    // One line per finished job, with its input count; the undecodable input reported, not retried.
    for (const line of survivorsDone) expect(line).toMatch(/^done hs-[0-9a-f]+: [1-3] inputs/);
    expect((await queue.getJobs(['failed'])).length).toBe(0);
    // Harvested jobs are removed: nothing is left behind in Redis.
    const counts = await queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
    expect(Object.values(counts).every((n) => n === 0)).toBe(true);
  });

  test('Redis restarted mid-run (AOF) resumes; inputs travel inside jobs; a second run and a later train reuse the cache', async () => {
    const live = workers.filter((worker) => worker.child.exitCode === null && worker.child.signalCode === null);
    expect(live.length).toBe(2);
    const before = live.map((worker) => doneLines(worker).length);
    const cacheDir = join(root, 'restart-cache');
    const extract = ['extract', data, '-b', MOBILENET_035, '--cache-dir', cacheDir, '--queue', redis.url, '--queue-inputs', 'bytes', '--shard-size', '2', '--json'];
    const coordinator = spawnCli(extract);
    // Once work is under way, take Redis down for a second.
    await Promise.race(live.map((worker, i) => worker.waitFor(new RegExp(`(^done .*\\n){${before[i]! + 1}}`, 'm'))));
    await redis.restart(1000);
    expect(await coordinator.exited, coordinator.output()).toBe(0);
    const report = JSON.parse(coordinator.output().slice(coordinator.output().indexOf('{\n')));
    expect(report.vectors).toBe(2 * PER_CLASS);
    expect(report.computed).toBe(2 * PER_CLASS);
    expect(report.skipped.map((s: { source: string }) => s.source)).toEqual([join(data, 'ants', 'broken.jpg')]);

    // Run again: everything is cached, no job is sent.
    const again = await runCli(extract);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ computed: 0, fromCache: 2 * PER_CLASS });
    // Training on that cache computes nothing and gives the local model.
    const out = join(root, 'from-cache');
    const train = await runCli(['train', data, '-b', MOBILENET_035, '--cache-dir', cacheDir, '--out', out, '--no-report', '--json']);
    expect(train.code, train.stderr).toBe(0);
    expect(JSON.parse(train.stdout).training.timings.featuresComputed).toBe(0);
    expect((await readFile(join(out, 'head.bin'))).equals(localHead)).toBe(true);
  });

  test('a worker refuses a job whose backbone sha256 is not the one it resolves', async () => {
    const real = await openImageBackbone(MOBILENET_035, { cacheDir: backboneCache });
    try {
      const impostor = Object.assign(Object.create(Object.getPrototypeOf(real)), real, { reference: { ...real.reference, sha256: 'f'.repeat(64) } });
      const dataset = await readImageFolder(data);
      const cache = new FeatureCache(join(root, 'impostor-cache'), 'x', real.reference.featureDim);
      const error = await queueExtraction({ url: redis.url })
        .fill(impostor, dataset.validation.slice(0, 2), { cache, label: 'impostor', reporter: silentReporter })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HeadstartError);
      expect((error as HeadstartError).kind).toBe('model');
      expect((error as Error).message).toMatch(/is not the coordinator's \(sha256 [0-9a-f]{12}… ≠ ffffffffffff…\)/);
    } finally {
      await real.dispose();
    }
  });

  test('SIGTERM: a worker finishes the job in hand, then exits 0', async () => {
    const live = workers.filter((worker) => worker.child.exitCode === null && worker.child.signalCode === null);
    const [leaving] = live;
    const coordinator = spawnCli(['extract', data, '-b', MOBILENET_035, '--cache-dir', join(root, 'sigterm-cache'), '--queue', redis.url, '--shard-size', '12', '--json']);
    // Shards of 12 keep a job in hand long enough for the signal to land inside it.
    const job = await activeJobOf(leaving!);
    leaving!.child.kill('SIGTERM');
    expect(await leaving!.exited).toBe(0);
    const output = leaving!.output();
    const stopping = output.indexOf(`SIGTERM: finishing the job in hand (${job}), then stopping`);
    expect(stopping, output).toBeGreaterThanOrEqual(0);
    expect(output.indexOf(`done ${job}:`)).toBeGreaterThan(stopping);
    expect(await coordinator.exited, coordinator.output()).toBe(0);
  });
});
