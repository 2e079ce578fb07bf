/**
 * Does detector fine-tuning's random scale and crop help?
 * (`npx tsx bench/detect-augment.ts [--epochs 10] [--augment 1,2] [seeds…]`, seeds 0 1 unless given)
 * Trains the builtin CenterNet on the generated ant/bee set of `test/detector-train.test.ts` (32 training
 * images, here 24 validation images rather than 8, for a steadier mAP50) with flip + jitter views only and
 * with scale and crop added, 1 and 2 views, 10 epochs (patience 0), per seed; prints validation mAP50 / mAP.
 * Standalone, not in bench/run.ts: the default 2 seeds × 4 trainings take 10–20 min on 2 cores. Quality numbers are
 * seeded and do not depend on load; the seconds printed do. The outcome (seeds 0–3) is summed up by DETECTOR_TRAIN_DEFAULTS.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Detector } from '../src/detector/detector.js';
import { makeRoboflowSet } from '../test/helpers/detection-data.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const at = args.indexOf(name);
  return at < 0 ? fallback : args.splice(at, 2)[1]!;
};
const epochs = Number(flag('--epochs', '10'));
const augments = flag('--augment', '1,2').split(',').map(Number);
const seeds = args.map(Number);
const dir = await mkdtemp(join(tmpdir(), 'headstart-bench-det-augment-'));
try {
  const data = join(dir, 'data');
  await makeRoboflowSet(data, { seed: 3, train: 32, valid: 24 });
  console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' / ')}`);
  for (const seed of seeds.length ? seeds : [0, 1]) {
    for (const augment of augments) {
      for (const scaleCrop of [false, true]) {
        const started = performance.now();
        const detector = await Detector.train(data, { epochs, patience: 0, augment, scaleCrop }, { cacheDir: join(dir, 'cache'), seed });
        const m = detector.manifest!.metrics.validation!;
        const best = (detector.manifest!.training as { bestEpoch?: number }).bestEpoch;
        console.log(`seed ${seed} epochs ${epochs} augment ${augment} ${scaleCrop ? 'scale+crop+flip+jitter' : 'flip+jitter          '}  mAP50 ${(100 * m.mAP50).toFixed(1)}  mAP ${(100 * m.mAP).toFixed(1)}  best epoch ${best}  ${((performance.now() - started) / 1000).toFixed(0)} s  load ${loadavg()[0]!.toFixed(2)}`);
        await detector.dispose();
      }
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
