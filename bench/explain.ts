/**
 * The explain section of `npm run bench`: Grad-CAM per image against one prediction, and
 * integrated gradients with 32 steps (the target) and with --steps auto (steps needed per
 * photo), on builtin:mobilenet-v2-1.0 trained on hymenoptera.
 * Prints only; nothing is asserted. Runs alone with `npx tsx bench/explain.ts`.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import { readImageFolder } from '../src/data/image-folder.js';

const SHARED = fileURLToPath(new URL('../../shared/', import.meta.url));
const HYMENOPTERA = join(SHARED, 'data/images/hymenoptera');

const line = (label: string, value: string, note = '') => console.log(`${label.padEnd(58)} ${value.padStart(14)}  ${note}`);
const section = (title: string) => console.log(`\n## ${title}`);

/** Median milliseconds of `run` over `inputs`, after one warm-up call. */
async function medianMs(inputs: Uint8Array[], run: (input: Uint8Array) => Promise<unknown>): Promise<number> {
  await run(inputs[0]!);
  const times: number[] = [];
  for (const input of inputs) {
    const start = performance.now();
    await run(input);
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

export async function explainBench(): Promise<void> {
  const cacheDir = await mkdtemp(join(tmpdir(), 'headstart-bench-explain-'));
  section(`Explain (builtin:mobilenet-v2-1.0 + linear head on hymenoptera, ${availableParallelism()} cores; medians per image, end to end from JPEG bytes)`);
  const started = performance.now();
  const classifier = await ImageClassifier.train({ data: HYMENOPTERA, backbone: 'builtin:mobilenet-v2-1.0', cacheDir });
  const dataset = await readImageFolder(HYMENOPTERA);
  const photos = await Promise.all(dataset.validation.filter((_, i) => i % 8 === 0).map((item) => readFile(item.source)));
  line('training (features + head), for reference', `${((performance.now() - started) / 1000).toFixed(1)} s`);

  const buildStart = performance.now();
  await classifier.explain(photos[0]!, { method: 'gradcam' });
  await classifier.explain(photos[0]!, { method: 'integrated-gradients', steps: 2 });
  line('first explanation: attribution graph built, probed, both sessions', `${((performance.now() - buildStart) / 1000).toFixed(1)} s`, '(once per model)');

  const predict = await medianMs(photos, (photo) => classifier.predict(photo));
  const gradCam = await medianMs(photos, (photo) => classifier.explain(photo, { method: 'gradcam' }));
  line('predict (decode + one forward)', `${predict.toFixed(1)} ms`);
  line('Grad-CAM (decode + predict + forward/backward to the last block)', `${gradCam.toFixed(1)} ms`, `${(gradCam / predict).toFixed(2)}× predict (target ≤ 3×)`);
  const saliency = await medianMs(photos.slice(0, 8), (photo) => classifier.explain(photo, { method: 'saliency' }));
  line('saliency (full backward to the pixels)', `${saliency.toFixed(1)} ms`, `${(saliency / predict).toFixed(2)}× predict`);
  const occlusion = await medianMs(photos.slice(0, 4), (photo) => classifier.explain(photo, { method: 'occlusion' }));
  line('occlusion (32-px windows, stride 16: 169 forwards)', `${occlusion.toFixed(0)} ms`);
  let worstCompleteness = 0;
  const ig = await medianMs(photos.slice(0, 8), async (photo) => {
    const explanation = await classifier.explain(photo, { method: 'integrated-gradients', steps: 32 });
    worstCompleteness = Math.max(worstCompleteness, explanation.completeness!.relativeError);
  });
  line('integrated gradients, 32 steps (+ input and baseline rows)', `${(ig / 1000).toFixed(2)} s`, `(target ≤ 1.5 s) worst completeness gap at 32 steps ${(worstCompleteness * 100).toFixed(1)} %`);
  // --steps auto: the steps it needed per photo, to decide whether it can be the default.
  const used: string[] = [];
  let worstAuto = 0;
  let capped = 0;
  const auto = await medianMs(photos.slice(0, 8), async (photo) => {
    const { completeness } = await classifier.explain(photo, { method: 'integrated-gradients', steps: 'auto' });
    used.push(String(completeness!.steps));
    worstAuto = Math.max(worstAuto, completeness!.relativeError);
    if (completeness!.capped) capped++;
  });
  line('integrated gradients, --steps auto (to 1 %, cap 1024)', `${(auto / 1000).toFixed(2)} s`, `steps per photo ${used.join(', ')}; worst gap ${(worstAuto * 100).toFixed(2)} %; ${capped} capped`);
  await classifier.dispose();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await explainBench();
