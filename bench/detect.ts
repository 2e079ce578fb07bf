/**
 * The detection section of `npm run bench` (also `npx tsx bench/detect.ts`): the builtin CenterNet's
 * forward speed at 512×512 (target ≥ 25 images/s on 2 cores), `detect` end to end (decode + forward +
 * peak decoding) on darknet's photos, and reading a generated 300-image set in each layout.
 * Prints only; nothing is asserted. Fine-tuning and export are not built yet (see notes).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CenterNetLayout } from '../src/detector/centernet-layout.js';
import { Detector } from '../src/detector/detector.js';
import { readDetectionDataset } from '../src/detector/read-dataset.js';
import { cocoToVoc, cocoToYolo, makeRoboflowSet } from '../test/helpers/detection-data.js';

const line = (label: string, value: string, note = '') => console.log(`${label.padEnd(58)} ${value.padStart(14)}  ${note}`);
const section = (title: string) => console.log(`\n## ${title}`);
const PHOTOS = ['dog', 'person', 'horses', 'giraffe', 'eagle', 'kite'].map((n) => `/usr/share/darknet/data/${n}.jpg`);

export async function detectBench(): Promise<void> {
  section('Detection (builtin:centernet, 512×512)');
  const dir = await mkdtemp(join(tmpdir(), 'headstart-bench-detect-'));
  try {
    const detector = await Detector.load('builtin:centernet', { cacheDir: join(dir, 'cache') });
    const layout = detector.layout as CenterNetLayout;
    const blank = new Float32Array(512 * 512 * 3).fill(128);
    for (const batch of [1, 4]) {
      await layout.forward(Array.from({ length: batch }, () => blank));
      const rounds = batch === 1 ? 12 : 4;
      const start = performance.now();
      for (let i = 0; i < rounds; i++) await layout.forward(Array.from({ length: batch }, () => blank));
      const seconds = (performance.now() - start) / 1000;
      line(`forward, batch ${batch}`, `${((rounds * batch) / seconds).toFixed(1)} img/s`, 'target ≥ 25');
    }
    const photos = await Promise.all(PHOTOS.map((p) => readFile(p)));
    await detector.detectMany(photos.slice(0, 1));
    const start = performance.now();
    const results = await detector.detectMany([...photos, ...photos]);
    const seconds = (performance.now() - start) / 1000;
    line('detect end to end (JPEG decode + forward + peaks)', `${(results.length / seconds).toFixed(1)} img/s`, `${PHOTOS.length} darknet photos ×2`);
    await detector.dispose();

    const root = join(dir, 'set');
    let t = performance.now();
    await makeRoboflowSet(root, { seed: 1, train: 240, valid: 60 });
    line('generate a 300-image synthetic set (test/helpers)', `${((performance.now() - t) / 1000).toFixed(1)} s`);
    const yolo = await cocoToYolo(root, join(dir, 'yolo'));
    const voc = await cocoToVoc(root, join(dir, 'voc'));
    for (const [name, path] of [['Roboflow COCO', root], ['YOLO', yolo], ['Pascal VOC', voc]] as const) {
      t = performance.now();
      const data = await readDetectionDataset(path);
      const boxes = [...data.train, ...data.validation].reduce((sum, item) => sum + item.boxes.length, 0);
      line(`read ${name} (${data.train.length + data.validation.length} images, ${boxes} boxes)`, `${(performance.now() - t).toFixed(0)} ms`);
    }
    line('fine-tuning on 300 images (≤ 3 min cached, ≤ 6 cold)', 'not built', 'see notes/detect.md');
    line('exported detector', 'not built', 'see notes/detect.md');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await detectBench();
