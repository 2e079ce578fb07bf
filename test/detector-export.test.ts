import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeModel, encodeModel } from '../src/backbones/tfjs/onnx-graph.js';
import { builtinCenterNet } from '../src/detector/centernet.js';
import { retargetClasses } from '../src/detector/centernet-head.js';
import { Detector } from '../src/detector/detector.js';
import type { PreparedPixels } from '../src/detector/layout.js';
import { ExportedDetector } from '../src/export/exported-detector.js';
import { compareDetections, exportDetector, float32Below, type DetectorExportCheck } from '../src/export/detector-export.js';
import { detectionPlacement, detectionsFromRows, parseExportMetadata, readOnnxMetadata } from '../src/web/format.js';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/images.js';

const require = createRequire(import.meta.url);
const DARKNET = '/usr/share/darknet/data';
const PHOTOS = ['dog', 'person', 'horses', 'giraffe'].map((name) => join(DARKNET, `${name}.jpg`));
const YOLO = 'test/fixtures/detection/yolo-tiny-random.onnx';
/** The YOLO fixture's own images (letterboxed with padding on one side each) and two darknet photos (downscaled). */
const YOLO_IMAGES = ['test/fixtures/detection/wide.png', 'test/fixtures/detection/square.png', PHOTOS[0]!, PHOTOS[2]!];

/**
 * What a consumer without headstart does: onnxruntime-node and onnxruntime-web's Node build, the
 * file and RGB bytes at the input size. Prints each runtime's [N, 6] rows per image as JSON.
 */
async function plainRows(work: string, model: string, pixels: Uint8Array[], width: number, height: number): Promise<{ node: number[][]; web: number[][] }> {
  const script = join(work, 'plain-detector.mjs');
  await writeFile(join(work, 'pixels.bin'), Buffer.concat(pixels));
  await writeFile(
    script,
    `import { readFileSync } from 'node:fs';
import ortNode from ${JSON.stringify(pathToFileURL(require.resolve('onnxruntime-node')).href)};
import * as ortWeb from ${JSON.stringify(new URL('../node_modules/onnxruntime-web/dist/ort.node.min.mjs', import.meta.url).href)};
const [model, pixelFile, width, height] = process.argv.slice(2);
const bytes = readFileSync(model);
const all = new Uint8Array(readFileSync(pixelFile));
const size = Number(width) * Number(height) * 3;
const out = {};
for (const [name, ort] of [['node', ortNode], ['web', ortWeb]]) {
  const session = await ort.InferenceSession.create(bytes);
  out[name] = [];
  for (let i = 0; i < all.length / size; i++) {
    const input = new ort.Tensor('uint8', all.slice(i * size, (i + 1) * size), [1, Number(height), Number(width), 3]);
    const result = await session.run({ [session.inputNames[0]]: input });
    const rows = result[session.outputNames[0]];
    if (rows.dims.length !== 2 || rows.dims[1] !== 6) throw new Error('bad output dims ' + rows.dims);
    out[name].push(Array.from(rows.data));
  }
}
process.stdout.write(JSON.stringify(out));`,
  );
  return JSON.parse(execFileSync(process.execPath, [script, model, join(work, 'pixels.bin'), String(width), String(height)], { maxBuffer: 64 << 20 }).toString());
}

let work: string;
beforeAll(async () => {
  work = await tempDir('headstart-detector-export-');
});
afterAll(() => rm(work, { recursive: true, force: true }));

/** Exports `reference`, runs the file in plain onnxruntime-node and -web on the library's pixels, and compares with `Detector.detect`. */
async function exportAndCompare(reference: string, images: string[], threshold: number) {
  const detector = await Detector.load(reference, { cacheDir: join(work, 'cache') });
  try {
    const result = await exportDetector(detector, { threshold, maxDetections: 50 });
    const file = join(work, `${reference.replace(/\W+/g, '_')}.onnx`);
    await writeFile(file, result.onnx);
    const bytes = await Promise.all(images.map((p) => readFile(p)));
    const prepared: PreparedPixels[] = await Promise.all(bytes.map((b) => detector.layout.preparePixels!(b)));
    const library = await detector.detectMany(bytes, { threshold, maxDetections: 50 });
    const { input } = result.metadata;
    if (input.kind !== 'image') throw new Error('not an image input');
    const plain = await plainRows(work, file, prepared.map((p) => p.pixels), input.width, input.height);
    const checks: Record<'node' | 'web', DetectorExportCheck> = {
      node: { images: images.length, sameDetections: true, maxBoxDifference: 0, maxScoreDifference: 0 },
      web: { images: images.length, sameDetections: true, maxBoxDifference: 0, maxScoreDifference: 0 },
    };
    for (const runtime of ['node', 'web'] as const) {
      prepared.forEach((image, i) => {
        // The consumer's geometry (from the metadata alone) must be the library's.
        const place = detectionPlacement(image.width, image.height, input);
        expect([place.scaleX, place.scaleY, place.padX, place.padY]).toEqual([image.scaleX, image.scaleY, image.padX, image.padY]);
        compareDetections(detectionsFromRows(plain[runtime][i]!, result.metadata.labels, place, image.width, image.height), library[i]!.detections, checks[runtime]);
      });
    }
    return { result, library, checks, classes: detector.classes };
  } finally {
    await detector.dispose();
  }
}

describe.skipIf(!existsSync(PHOTOS[0]!))('headstart export on detectors', () => {
  it('builtin:centernet: peaks, top-k and boxes in the graph give Detector.detect\'s boxes within 1e-4 in onnxruntime-node and -web', async () => {
    const { result, library, checks, classes } = await exportAndCompare('builtin:centernet', PHOTOS, 0.2);
    // Enough boxes that the comparison means something, and the objects the photos show.
    expect(library.reduce((n, image) => n + image.detections.length, 0)).toBeGreaterThan(8);
    expect(library[0]!.detections.map((d) => d.label)).toContain('dog');
    for (const runtime of ['node', 'web'] as const) {
      expect(checks[runtime].sameDetections, runtime).toBe(true);
      expect(checks[runtime].maxBoxDifference, runtime).toBeLessThan(1e-4);
      expect(checks[runtime].maxScoreDifference, runtime).toBeLessThan(1e-4);
    }
    const metadata = parseExportMetadata(readOnnxMetadata(result.onnx));
    expect(metadata.modality).toBe('detection');
    expect(metadata.labels).toEqual(classes);
    expect(metadata.input).toMatchObject({ kind: 'image', dtype: 'uint8', layout: 'NHWC', width: 512, height: 512, resize: 'stretch' });
    expect(metadata.output).toMatchObject({ kind: 'detections', columns: ['x1', 'y1', 'x2', 'y2', 'score', 'class'], classes: 80, threshold: 0.2, maxDetections: 50, decoding: { kind: 'centernet-peaks' } });
  });

  it('an Ultralytics YOLO file: NonMaxSuppression in the graph gives the library\'s class-aware NMS within 1e-4, letterbox undone from the metadata', async () => {
    const { library, checks } = await exportAndCompare(YOLO, YOLO_IMAGES, 0.3);
    expect(library.reduce((n, image) => n + image.detections.length, 0)).toBeGreaterThan(4);
    for (const runtime of ['node', 'web'] as const) {
      expect(checks[runtime].sameDetections, runtime).toBe(true);
      expect(checks[runtime].maxBoxDifference, runtime).toBeLessThan(1e-4);
      expect(checks[runtime].maxScoreDifference, runtime).toBeLessThan(1e-4);
    }
  });

  it('a detector model folder (the class branch retargeted to dog, person, kite, saved and loaded) exports with its own classes and agrees within 1e-4', async () => {
    const builtin = await builtinCenterNet({ cacheDir: join(work, 'cache') });
    const graph = decodeModel(await readFile(builtin.model), builtin.model);
    const classes = ['dog', 'person', 'kite'];
    retargetClasses(graph, classes, 1, builtin.model);
    const trained = await Detector.fromTrained(encodeModel(graph, 'retargeted', ''), {
      modality: 'image', labels: classes, training: {}, metrics: {}, skipped: [],
      detector: { kind: 'centernet', inputName: builtin.inputName, heatmapOutput: builtin.heatmapOutput, sidesOutput: builtin.sidesOutput, inputSize: 512, stride: 4, base: { id: 'builtin:centernet', sha256: builtin.sha256 } },
    }, 'retargeted');
    const folder = join(work, 'retargeted-model');
    await trained.save(folder);
    await trained.dispose();
    const { result, library, checks } = await exportAndCompare(folder, PHOTOS.slice(0, 2), 0.2);
    expect(result.metadata.labels).toEqual(classes);
    expect(result.metadata.output).toMatchObject({ kind: 'detections', classes: 3 });
    // The rows started from COCO's dog and person: the photos' dog and person are found.
    expect(library[0]!.detections.map((d) => d.label)).toContain('dog');
    for (const runtime of ['node', 'web'] as const) {
      expect(checks[runtime].sameDetections, runtime).toBe(true);
      expect(checks[runtime].maxBoxDifference, runtime).toBeLessThan(1e-4);
      expect(checks[runtime].maxScoreDifference, runtime).toBeLessThan(1e-4);
    }
  });

  it('ExportedDetector.detect takes a photo\'s bytes, places it from the metadata alone and finds the library\'s confident objects', async () => {
    const detector = await Detector.load('builtin:centernet', { cacheDir: join(work, 'cache') });
    const exported = await ExportedDetector.load((await exportDetector(detector, { threshold: 0.3 })).onnx);
    try {
      for (const photo of PHOTOS.slice(0, 2)) {
        const library = (await detector.detect(photo, { threshold: 0.3 })).detections.filter((d) => d.score > 0.5);
        const found = await exported.detect(await readFile(photo), photo);
        expect(library.length).toBeGreaterThan(0);
        for (const d of library) expect(found.some((f) => f.label === d.label && Math.abs(f.score - d.score) < 0.1), `${photo}: ${d.label}`).toBe(true);
      }
    } finally {
      await exported.release();
      await detector.dispose();
    }
  });

  it('keeps scores equal to the threshold, as the library does (NonMaxSuppression keeps only scores above its own)', () => {
    for (const t of [0.25, 0.1, 0.3333, 1e-3]) {
      const below = float32Below(t);
      expect(below).toBeLessThan(Math.fround(t) >= t ? Math.fround(t) : t);
      // No float32 lies strictly between `below` and the threshold's float32 ceiling.
      const ceiling = Math.fround(t) >= t ? Math.fround(t) : Math.fround(t + Math.abs(t) * 1e-7);
      expect(Math.fround((below + ceiling) / 2) === below || Math.fround((below + ceiling) / 2) === ceiling).toBe(true);
    }
  });

  it('`headstart export builtin:centernet --out` writes the file and `--json` describes it; a DETR folder is refused with a reason', async () => {
    const out = join(work, 'cli-centernet.onnx');
    const result = await runCli(['export', 'builtin:centernet', '--out', out, '--threshold', '0.3', '--max-detections', '20', '--json', '--quiet', '--cache-dir', join(work, 'cache')]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const json = JSON.parse(result.stdout) as { file: string; metadata: { output: { threshold: number; maxDetections: number } }; check: DetectorExportCheck };
    expect(json.file).toBe(out);
    expect(json.metadata.output).toMatchObject({ threshold: 0.3, maxDetections: 20 });
    expect(json.check.sameDetections).toBe(true);
    const metadata = parseExportMetadata(readOnnxMetadata(await readFile(out)));
    expect(metadata.output.kind).toBe('detections');
    const detr = await runCli(['export', 'test/fixtures/detection/detr-tiny-random', '--out', join(work, 'detr.onnx'), '--quiet', '--cache-dir', join(work, 'cache')]);
    expect(detr.code).not.toBe(0);
    expect(detr.stderr).toMatch(/cannot export a detr detector/);
  });

  it('maps rows back through the letterbox and clips to the photo', async () => {
    const place = detectionPlacement(200, 100, { resize: 'letterbox', width: 64, height: 64 });
    expect(place).toMatchObject({ x: 0, y: 16, width: 64, height: 32, padX: 0, padY: 16 });
    const [d] = detectionsFromRows([-5, 16, 32, 48, 0.9, 1], ['a', 'b'], place, 200, 100);
    expect(d).toEqual({ label: 'b', classIndex: 1, score: 0.9, box: [0, 0, 100, 100] });
    expect((await sharp(YOLO_IMAGES[0]!).metadata()).width).toBeGreaterThan(0);
  });
});
