import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareImagePixels } from '../src/data/image-decode.js';
import type { DetectionDataset, DetectionItem } from '../src/detector/detection-dataset.js';
import { detectionFormatOf, readDetectionDataset } from '../src/detector/read-dataset.js';
import { HeadstartError } from '../src/util/errors.js';
import { cocoJson, cocoToVoc, cocoToYolo, makeRoboflowSet, type SyntheticImage, type SyntheticSet } from './helpers/detection-data.js';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/images.js';

let dir: string;
let roboflow: string;
let set: SyntheticSet;

beforeAll(async () => {
  dir = await tempDir('headstart-detect-data-');
  roboflow = join(dir, 'roboflow');
  set = await makeRoboflowSet(roboflow, { seed: 7, train: 10, valid: 5 });
}, 60_000);
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The reader's items, by file name, as truth-shaped records. */
function byFile(items: DetectionItem[]) {
  return new Map(items.map((item) => [item.source.split('/').pop()!, item]));
}

function expectMatchesTruth(items: DetectionItem[], truth: SyntheticImage[], tolerance: number) {
  const found = byFile(items);
  expect([...found.keys()].sort()).toEqual(truth.map((t) => t.file).sort());
  for (const image of truth) {
    const item = found.get(image.file)!;
    expect([item.width, item.height]).toEqual([image.width, image.height]);
    expect(item.boxes.map((b) => b.label)).toEqual(image.boxes.map((b) => b.label));
    item.boxes.forEach((b, i) => b.box.forEach((v, k) => expect(Math.abs(v - image.boxes[i]!.box[k]!)).toBeLessThanOrEqual(tolerance)));
  }
}

async function expectDataError(promise: Promise<unknown>, ...fragments: string[]) {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(HeadstartError);
  expect((error as HeadstartError).kind).toBe('data');
  for (const fragment of fragments) expect((error as Error).message).toContain(fragment);
}

describe('detection datasets in the three layouts', () => {
  it('reads a Roboflow COCO export: classes, boxes, negatives, the given validation split', async () => {
    expect(await detectionFormatOf(roboflow)).toBe('coco');
    const data = await readDetectionDataset(roboflow);
    expect(data.format).toBe('coco');
    expect(data.classes).toEqual(set.classes);
    expect(data.validationSource).toBe('given');
    expect(data.skipped).toEqual([]);
    expectMatchesTruth(data.train, set.splits.train, 0);
    expectMatchesTruth(data.validation, set.splits.valid, 0);
    expect(data.train.some((item) => item.boxes.length === 0)).toBe(true);
    expect(data.train.filter((item) => item.boxes.length >= 2).length).toBeGreaterThan(0);
  });

  it('reads the same set converted to YOLO (dataset YAML and bare images/ + labels/) and to Pascal VOC', async () => {
    const yolo = await cocoToYolo(roboflow, join(dir, 'yolo'));
    expect(await detectionFormatOf(yolo)).toBe('yolo');
    for (const path of [yolo, join(yolo, 'data.yaml')]) {
      const data = await readDetectionDataset(path);
      expect(data.format).toBe('yolo');
      expect(data.classes).toEqual(set.classes);
      expect(data.validationSource).toBe('given');
      // Six decimals of a normalised coordinate: within a thousandth of a pixel on these sizes.
      expectMatchesTruth(data.train, set.splits.train, 1e-3);
      expectMatchesTruth(data.validation, set.splits.valid, 1e-3);
    }
    await rm(join(yolo, 'data.yaml'));
    await writeFile(join(yolo, 'classes.txt'), 'ant\nbee\n');
    const bare = await readDetectionDataset(yolo);
    expect(bare.classes).toEqual(set.classes);
    expectMatchesTruth(bare.validation, set.splits.valid, 1e-3);

    const voc = await cocoToVoc(roboflow, join(dir, 'voc'));
    expect(await detectionFormatOf(voc)).toBe('voc');
    const data = await readDetectionDataset(voc);
    expect(data.format).toBe('voc');
    expect(data.classes).toEqual(set.classes);
    expectMatchesTruth(data.train, set.splits.train, 0);
    expectMatchesTruth(data.validation, set.splits.valid, 0);
  });

  it("reads COCO's own layout: annotations/instances_<split>.json beside <split>/", async () => {
    const coco = join(dir, 'coco');
    await mkdir(join(coco, 'annotations'), { recursive: true });
    await writeFile(join(coco, 'annotations', 'instances_train2017.json'), JSON.stringify(cocoJson(set, set.splits.train)));
    await rm(join(coco, 'train2017'), { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.cp(join(roboflow, 'train'), join(coco, 'train2017'), { recursive: true }));
    const data = await readDetectionDataset(coco, { seed: 3, validationFraction: 0.3 });
    expect(data.validationSource).toEqual({ heldOutFraction: 0.3, seed: 3 });
    expect(data.train.length + data.validation.length).toBe(10);
    expect(data.validation.length).toBe(3);
  });

  it('without a validation split, holds out a seeded share of the images (the same seed, the same split)', async () => {
    const yolo = join(dir, 'yolo-train-only');
    await cocoToYolo(roboflow, yolo);
    await writeFile(join(yolo, 'data.yaml'), 'path: .\ntrain: images/train\nnames: [ant, bee]\n');
    const names = (d: DetectionDataset) => d.validation.map((i) => i.source).sort();
    const a = await readDetectionDataset(yolo, { seed: 1 });
    const b = await readDetectionDataset(yolo, { seed: 1 });
    const c = await readDetectionDataset(yolo, { seed: 2 });
    expect(names(a)).toEqual(names(b));
    expect(names(a)).not.toEqual(names(c));
    expect(a.validation.length).toBe(2);
    const trainSet = new Set(a.train.map((i) => i.source));
    expect(a.validation.some((i) => trainSet.has(i.source))).toBe(false);
    expect(a.train.length + a.validation.length).toBe(10);
  });
});

describe('bad annotations are skipped and listed; unreadable files are errors', () => {
  it('COCO: degenerate, outside, NaN, unknown-class boxes, duplicate ids and missing images are skipped with their ids; partly outside is clipped', async () => {
    const root = join(dir, 'bad-coco');
    await import('node:fs/promises').then((fs) => fs.cp(roboflow, root, { recursive: true }));
    const file = join(root, 'train', '_annotations.coco.json');
    const json = JSON.parse(await readFile(file, 'utf8'));
    const image = json.images[0];
    const add = (id: number, bbox: unknown[], category = 1) => json.annotations.push({ id, image_id: image.id, category_id: category, bbox, area: 1, iscrowd: 0 });
    add(9001, [10, 10, 0, 20]); // no width
    add(9002, [image.width + 5, 10, 20, 20]); // entirely right of the image
    add(9003, [null, 10, 20, 20]); // NaN survives JSON only as null
    add(9004, [10, 10, 20, 20], 77); // no such category
    add(9005, [-10, -10, 30, 40]); // partly outside: clipped to [0, 0, 20, 30]
    json.annotations.push({ ...json.annotations.at(-1), bbox: [1, 1, 5, 5] }); // duplicate annotation id 9005
    json.images.push({ ...image, file_name: 'other.jpg' }); // duplicate image id
    json.images.push({ id: 999, file_name: 'missing.jpg', width: 100, height: 100 });
    await writeFile(file, JSON.stringify(json));
    json.categories.unshift({ id: 0, name: 'insects', supercategory: 'none' }); // Roboflow's project category: not a class
    await writeFile(file, JSON.stringify(json));

    const data = await readDetectionDataset(root);
    expect(data.classes).toEqual(['ant', 'bee']);
    const reasons = data.skipped.map((s) => `${s.source} ${s.reason}`);
    const expectSkip = (...parts: string[]) => expect(reasons.some((r) => parts.every((p) => r.includes(p))), `${parts} in\n${reasons.join('\n')}`).toBe(true);
    expectSkip(file, 'annotation id 9001', 'degenerate');
    expectSkip(file, 'annotation id 9002', 'outside');
    expectSkip(file, 'annotation id 9003', 'not numbers');
    expectSkip(file, 'annotation id 9004', 'unknown class');
    expectSkip(file, 'duplicate annotation id 9005');
    expectSkip(file, `duplicate image id ${image.id}`);
    expectSkip('missing.jpg', 'missing');
    expect(data.skipped.length).toBe(7);
    const item = data.train.find((i) => i.source.endsWith(image.file_name))!;
    const truth = set.splits.train.find((t) => t.file === image.file_name)!;
    expect(item.boxes.length).toBe(truth.boxes.length + 1);
    expect(item.boxes.at(-1)!.box).toEqual([0, 0, 20, 30]);
  });

  it('YOLO: NaN, unknown-class, degenerate and outside lines are skipped by line; a line that is not numbers names the file and line', async () => {
    const yolo = join(dir, 'bad-yolo');
    await cocoToYolo(roboflow, yolo);
    const label = join(yolo, 'labels', 'train', 'train-0000.txt');
    const original = await readFile(label, 'utf8');
    const lines = original.trim().split('\n').length;
    await writeFile(label, original + '0 nan 0.5 0.1 0.1\n7 0.5 0.5 0.1 0.1\n1 0.5 0.5 0 0.1\n0 1.5 1.5 0.2 0.2\n0 0.95 0.5 0.2 0.2\n');
    const data = await readDetectionDataset(yolo);
    const reasons = data.skipped.map((s) => `${s.source} ${s.reason}`);
    expect(reasons).toHaveLength(4);
    expect(reasons[0]).toContain(`${label} line ${lines + 1}: coordinates are not numbers`);
    expect(reasons[1]).toContain(`line ${lines + 2}: unknown class "7"`);
    expect(reasons[2]).toContain(`line ${lines + 3}: degenerate`);
    expect(reasons[3]).toContain(`line ${lines + 4}`);
    expect(reasons[3]).toContain('outside');
    const item = data.train.find((i) => i.source.endsWith('train-0000.jpg'))!;
    expect(item.boxes.at(-1)!.box[2]).toBe(item.width); // clipped at the right edge

    await writeFile(label, original + 'zero 0.5 0.5 0.1 0.1\n');
    await expectDataError(readDetectionDataset(yolo), label, `line ${lines + 1}`, 'cannot parse');
    await writeFile(join(yolo, 'data.yaml'), 'names: [ant, bee\ntrain: [');
    await expectDataError(readDetectionDataset(yolo), join(yolo, 'data.yaml'), 'cannot parse');
  });

  it('VOC and COCO: a file that cannot be parsed is an error naming it; nothing usable is an error', async () => {
    const voc = join(dir, 'bad-voc');
    await cocoToVoc(roboflow, voc);
    const xml = join(voc, 'Annotations', 'train-0001.xml');
    await writeFile(xml, '<annotation><filename>train-0001.jpg</filename><object><name>ant</object></annotation>');
    await expectDataError(readDetectionDataset(voc), xml, 'cannot parse XML');

    const coco = join(dir, 'broken-coco');
    await mkdir(join(coco, 'train'), { recursive: true });
    await writeFile(join(coco, 'train', '_annotations.coco.json'), '{"images": [');
    await expectDataError(readDetectionDataset(coco), join(coco, 'train', '_annotations.coco.json'), 'cannot parse COCO JSON');
    await writeFile(join(coco, 'train', '_annotations.coco.json'), JSON.stringify({ images: [{ id: 1, file_name: 'gone.jpg', width: 10, height: 10 }], annotations: [], categories: [{ id: 1, name: 'ant' }] }));
    await expectDataError(readDetectionDataset(coco), coco, 'nothing usable', 'missing');
    await expectDataError(readDetectionDataset(dir), 'not a detection dataset');
  });
});

describe('the CLI on detection data', () => {
  it('`headstart train` recognises a detection export and trains a detector on it (not class folders); --shots is refused for detection', async () => {
    const out = join(dir, 'model');
    const result = await runCli(['train', roboflow, '--out', out, '--epochs', '1', '--json', '--cache-dir', join(dir, 'cache'), '--quiet']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as { task: string; labels: string[] };
    expect(manifest.task).toBe('detect');
    const categories = (JSON.parse(await readFile(join(roboflow, 'train', '_annotations.coco.json'), 'utf8')) as { categories: { name: string }[] }).categories.map((c) => c.name);
    expect([...manifest.labels].sort()).toEqual([...new Set(categories)].sort());
    const metrics = JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8')) as Record<string, unknown>;
    for (const key of ['mAP', 'mAP50', 'mAP75']) expect(typeof metrics[key]).toBe('number');
    const refused = await runCli(['train', roboflow, '--shots', '5', '--out', join(dir, 'shots'), '--quiet']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--shots is not available for detection');
  }, 240_000);
});

describe('EXIF orientation never makes boxes and pixels disagree', () => {
  /**
   * A displayed 120×80 grey image with a red square at [80, 10, 110, 40], stored turned 90° anticlockwise
   * (80×120 pixels) with EXIF orientation 6, so viewers turn it back. Read back, the box must sit on red
   * pixels after decoding — whether the annotation tool drew it on the displayed image or on the stored pixels.
   */
  it('keeps boxes on the object for displayed-frame and stored-frame annotations', async () => {
    const root = join(dir, 'exif');
    await mkdir(join(root, 'train'), { recursive: true });
    const red = await sharp({ create: { width: 30, height: 30, channels: 3, background: { r: 230, g: 10, b: 10 } } }).png().toBuffer();
    const displayed = await sharp({ create: { width: 120, height: 80, channels: 3, background: { r: 128, g: 128, b: 128 } } }).composite([{ input: red, left: 80, top: 10 }]).png().toBuffer();
    const stored = await sharp(displayed).rotate(270).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer();
    expect((await sharp(stored).metadata()).orientation).toBe(6);
    await writeFile(join(root, 'train', 'turned.jpg'), stored);
    await writeFile(join(root, 'train', 'plain.jpg'), await sharp(displayed).jpeg().toBuffer());
    // Stored frame: the red square is at [10, 10, 40, 40] of the 80×120 stored pixels (x = y', y = 120 - x').
    const json = {
      categories: [{ id: 1, name: 'red' }],
      images: [
        { id: 1, file_name: 'turned.jpg', width: 120, height: 80 },
        { id: 2, file_name: 'plain.jpg', width: 120, height: 80 },
      ],
      annotations: [
        { id: 1, image_id: 1, category_id: 1, bbox: [80, 10, 30, 30], iscrowd: 0 },
        { id: 2, image_id: 2, category_id: 1, bbox: [80, 10, 30, 30], iscrowd: 0 },
      ],
    };
    const storedFrame = { ...json, images: [{ id: 1, file_name: 'turned.jpg', width: 80, height: 120 }, json.images[1]], annotations: [{ ...json.annotations[0], bbox: [10, 10, 30, 30] }, json.annotations[1]] };
    for (const annotations of [json, storedFrame]) {
      await writeFile(join(root, 'train', '_annotations.coco.json'), JSON.stringify(annotations));
      const data = await readDetectionDataset(root, { seed: 0, validationFraction: 0.5 });
      const item = [...data.train, ...data.validation].find((i) => i.source.endsWith('turned.jpg'))!;
      expect([item.width, item.height]).toEqual([120, 80]);
      expect(item.boxes[0]!.box).toEqual([80, 10, 110, 40]);
      // Decoded as every model decodes (EXIF applied), the box's centre is red and its outside is grey.
      const pixels = await prepareImagePixels(await item.load(), { kind: 'image', width: 120, height: 80, resize: 'stretch', interpolation: 'bilinear', rescale: 1, mean: [0, 0, 0], std: [1, 1, 1], layout: 'NHWC' });
      const at = (x: number, y: number) => Array.from(pixels.subarray((y * 120 + x) * 3, (y * 120 + x) * 3 + 3));
      const [r, g] = at(95, 25);
      expect(r).toBeGreaterThan(180);
      expect(g).toBeLessThan(60);
      expect(Math.abs(at(20, 60)[0]! - 128)).toBeLessThan(20);
    }
    // A size that matches neither frame: the image is skipped, never read with misplaced boxes.
    await writeFile(join(root, 'train', 'plain2.jpg'), await sharp(displayed).jpeg().toBuffer());
    const mismatched = {
      ...json,
      images: [{ ...json.images[0], width: 100 }, json.images[1], { id: 3, file_name: 'plain2.jpg', width: 120, height: 80 }],
      annotations: [...json.annotations, { id: 3, image_id: 3, category_id: 1, bbox: [80, 10, 30, 30], iscrowd: 0 }],
    };
    await writeFile(join(root, 'train', '_annotations.coco.json'), JSON.stringify(mismatched));
    const data = await readDetectionDataset(root);
    expect([...data.train, ...data.validation].map((i) => i.source).some((s) => s.endsWith('turned.jpg'))).toBe(false);
    expect(data.skipped).toHaveLength(1);
    expect(data.skipped[0]!.source).toContain('turned.jpg');
    expect(data.skipped[0]!.reason).toContain('100×80, but the image is 120×80 (EXIF orientation 6 applied)');
  });
});
