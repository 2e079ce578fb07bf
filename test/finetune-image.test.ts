/**
 * Fine-tuning inside the backbone, end to end on a slice of hymenoptera with MobileNetV2 α=0.35:
 * the API and `headstart train … --unfreeze 2`, the model folder carrying the fine-tuned graph,
 * save → load → identical probabilities, and seeded determinism. Few images and epochs keep it
 * quick; the accuracy comparison over seeds is in `npm run bench`.
 */
import { asDense } from '../src/features/sparse.js';
import { mkdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openImageBackbone } from '../src/backbones/resolve.js';
import { decodeModel } from '../src/backbones/tfjs/onnx-graph.js';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import { exportClassifier } from '../src/export/onnx-export.js';
import type { Dataset } from '../src/data/dataset.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { fineTuneBackbone } from '../src/finetune/fine-tune.js';
import { buildModelReport } from '../src/report/report.js';
import { sha256 } from '../src/util/hash.js';
import { runCli } from './helpers/cli.js';
import { HYMENOPTERA, SHARED, tempDir } from './helpers/images.js';

const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');
const [TRAIN_PER_CLASS, VALIDATION_PER_CLASS] = [16, 10];

/** The first images of each class, so every run sees the same small set. */
function slice(dataset: Dataset<Uint8Array>): Dataset<Uint8Array> {
  const pick = <T extends { label: number }>(items: T[], n: number) => dataset.classes.flatMap((_, c) => items.filter((item) => item.label === c).slice(0, n));
  return { ...dataset, train: pick(dataset.train, TRAIN_PER_CLASS), validation: pick(dataset.validation, VALIDATION_PER_CLASS) };
}

describe('fine-tuning the backbone (MobileNetV2 α=0.35, hymenoptera slice)', () => {
  let work: string;
  let cacheDir: string;
  let dataset: Dataset<Uint8Array>;

  beforeAll(async () => {
    work = await tempDir('headstart-finetune-');
    cacheDir = join(work, 'cache');
    dataset = slice(await readImageFolder(HYMENOPTERA));
  });

  it('trains the last two blocks with the head; the model folder carries the fine-tuned graph and loads back identically', async () => {
    const classifier = await ImageClassifier.train({ data: dataset, backbone: MOBILENET_035, fineTune: { unfreeze: 2, epochs: 2 }, cacheDir, seed: 3 });
    const { manifest } = classifier;
    const record = manifest.training.fineTune as { blocks: { total: number; trained: { name: string }[] }; cut: string[]; history: unknown[] };
    expect(record.blocks.trained.map((block) => block.name)).toEqual(['block_15_expand/Conv', 'block_16_expand/Conv']);
    expect(record.cut).toEqual(['block_14_add']);
    expect(record.history.length).toBeGreaterThan(0);
    expect(manifest.backbone.fineTuned?.file).toBe('backbone.onnx');
    expect(manifest.backbone.id).toBe(MOBILENET_035);

    const dir = join(work, 'model');
    await classifier.save(dir, { report: false });
    const saved = await readFile(join(dir, 'backbone.onnx'));
    expect(sha256(saved)).toBe(manifest.backbone.sha256);
    expect(manifest.backbone.fineTuned!.base.sha256).not.toBe(manifest.backbone.sha256);
    // The report draws the joint training's curves above the final head's.
    const { data: report } = await buildModelReport(dir);
    expect(report.fineTune).toMatchObject({ bestEpoch: expect.any(Number), trained: expect.stringMatching(/^2 blocks \(block_15_expand\/Conv, block_16_expand\/Conv, [\d,]+ weights\)$/) });
    expect(report.fineTune!.history).toEqual(record.history);

    const images = dataset.validation.slice(0, 6).map((item) => item.source);
    const loaded = await ImageClassifier.load(dir, { cacheDir });
    const inputs = await Promise.all(images.map((path) => readFile(path)));
    const before = await classifier.predictProbabilities(inputs);
    const after = await loaded.predictProbabilities(inputs);
    expect(Array.from(after)).toEqual(Array.from(before));

    // The backbone's own weights moved above the cut and nowhere else; so did its features.
    const original = await openImageBackbone(MOBILENET_035, { cacheDir });
    const originalGraph = decodeModel(await readFile(original.spec.model as string));
    const tunedGraph = decodeModel(saved);
    expect(tunedGraph.floatInitializer('Conv1/weights')).toEqual(originalGraph.floatInitializer('Conv1/weights'));
    expect(tunedGraph.floatInitializer('block_14_project/weights')).toEqual(originalGraph.floatInitializer('block_14_project/weights'));
    expect(tunedGraph.floatInitializer('block_16_project/weights')).not.toEqual(originalGraph.floatInitializer('block_16_project/weights'));
    const prepared = await Promise.all(inputs.map((bytes) => original.prepare(bytes)));
    const frozenFeatures = asDense(await original.forward(prepared));
    const tunedFeatures = asDense(await loaded.backbone.forward(prepared as never));
    expect(Math.max(...frozenFeatures.map((v, i) => Math.abs(v - tunedFeatures[i]!)))).toBeGreaterThan(1e-3);

    // One ONNX file with the fine-tuned weights, agreeing with the library.
    const exported = await exportClassifier(loaded);
    expect(exported.check.maxAbsDifference).toBeLessThan(1e-5);
    await Promise.all([classifier.dispose(), loaded.dispose(), original.dispose()]);
  });

  it('gives bit-identical weights for the same seed', async () => {
    const backbone = await openImageBackbone(MOBILENET_035, { cacheDir });
    const run = async () => (await fineTuneBackbone(dataset, backbone, { unfreeze: 1, epochs: 1 }, { cacheDir, seed: 5 })).graph;
    const [first, second] = [await run(), await run()];
    expect(sha256(second)).toBe(sha256(first));
    await backbone.dispose();
  });

  it('`headstart train <photos> --unfreeze 2` fine-tunes from the command line', async () => {
    // A small ImageFolder of links to the slice's images.
    const data = join(work, 'photos');
    for (const [split, items] of [['train', dataset.train], ['val', dataset.validation]] as const) {
      for (const item of items) {
        const dir = join(data, split, dataset.classes[item.label]!);
        await mkdir(dir, { recursive: true });
        await symlink(item.source, join(dir, item.source.split('/').pop()!));
      }
    }
    const out = join(work, 'cli-model');
    const result = await runCli(['train', data, '--backbone', MOBILENET_035, '--unfreeze', '2', '--fine-tune-epochs', '1', '--out', out, '--cache-dir', cacheDir, '--quiet', '--json', '--no-report']);
    expect(result.code, result.stderr).toBe(0);
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(manifest.backbone.fineTuned.file).toBe('backbone.onnx');
    expect(manifest.training.fineTune.unfreeze).toBe(2);
    const predicted = await runCli(['predict', out, dataset.validation[0]!.source, '--json', '--cache-dir', cacheDir, '--quiet']);
    expect(predicted.code, predicted.stderr).toBe(0);
    expect(JSON.parse(predicted.stdout)[0].predictions).toHaveLength(2);
  });
});
