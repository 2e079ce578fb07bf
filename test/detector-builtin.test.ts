import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { iou, type Box } from '../src/detector/boxes.js';
import { decodeCenterNet } from '../src/detector/centernet.js';
import { Detector } from '../src/detector/detector.js';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/images.js';

/** Debian's darknet package ships these photos (CI installs it). */
const DARKNET = '/usr/share/darknet/data';
const PHOTOS = ['dog', 'person', 'horses', 'giraffe'].map((name) => join(DARKNET, `${name}.jpg`));

let dir: string;
beforeAll(async () => {
  dir = await tempDir('headstart-detect-builtin-');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('the builtin COCO detector, untrained', () => {
  it('`headstart detect builtin:centernet --json --draw` finds the dog, person, horses and giraffe in darknet\'s photos', async () => {
    const drawn = join(dir, 'drawn');
    const result = await runCli(['detect', 'builtin:centernet', ...PHOTOS, '--json', '--draw', drawn, '--cache-dir', join(dir, 'cache'), '--quiet']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const output = JSON.parse(result.stdout) as { input: string; detections: { label: string; score: number; box: Box }[] }[];
    expect(output.map((o) => o.input)).toEqual(PHOTOS);
    const sizes = await Promise.all(PHOTOS.map(async (p) => sharp(p).metadata()));
    output.forEach((o, i) => {
      for (const d of o.detections) {
        expect(Object.keys(d).sort()).toEqual(['box', 'label', 'score']);
        expect(d.score).toBeGreaterThanOrEqual(0.25);
        const [x1, y1, x2, y2] = d.box;
        expect(0 <= x1 && x1 < x2 && x2 <= sizes[i]!.width! && 0 <= y1 && y1 < y2 && y2 <= sizes[i]!.height!).toBe(true);
      }
    });
    const labels = (i: number) => output[i]!.detections.map((d) => d.label);
    expect(labels(0)).toContain('dog');
    expect(labels(1)).toContain('person');
    expect(labels(2)).toContain('horse');
    expect(labels(3)).toContain('giraffe');
    // Where the objects are (boxes YOLOv3 draws on the same photos in darknet's documentation), in original pixels.
    const best = (i: number, label: string, reference: Box) => Math.max(...output[i]!.detections.filter((d) => d.label === label).map((d) => iou(d.box, reference)));
    expect(best(0, 'dog', [128, 224, 314, 537])).toBeGreaterThan(0.5);
    expect(best(0, 'bicycle', [117, 124, 566, 450])).toBeGreaterThan(0.5);
    expect(best(1, 'person', [190, 98, 274, 380])).toBeGreaterThan(0.5);
    for (const [i, photo] of PHOTOS.entries()) {
      const copy = join(drawn, photo.split('/').pop()!);
      expect(existsSync(copy)).toBe(true);
      const meta = await sharp(copy).metadata();
      expect([meta.width, meta.height]).toEqual([sizes[i]!.width, sizes[i]!.height]);
    }
  }, 120_000);

  it('gives boxes in the displayed image\'s pixels when the photo is stored turned with an EXIF orientation', async () => {
    const detector = await Detector.load('builtin:centernet', { cacheDir: join(dir, 'cache') });
    try {
      const original = await readFile(PHOTOS[0]!);
      // Stored 90° anticlockwise, EXIF 6 (turn clockwise to display): viewers show the same photo.
      const turned = await sharp(original).rotate(270).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer();
      const [a, b] = await detector.detectMany([original, turned]);
      expect([b!.width, b!.height]).toEqual([a!.width, a!.height]);
      const dog = (r: typeof a) => r!.detections.find((d) => d.label === 'dog')!;
      expect(iou(dog(a).box, dog(b).box)).toBeGreaterThan(0.9);
    } finally {
      await detector.dispose();
    }
  }, 60_000);

  it('rejects an unknown builtin and a missing image with clear errors', async () => {
    await expect(Detector.load('builtin:yolo9000')).rejects.toThrow(/unknown builtin detector "yolo9000"; builtins: builtin:centernet/);
    const result = await runCli(['detect', 'builtin:centernet', join(dir, 'nope.jpg'), '--cache-dir', join(dir, 'cache'), '--quiet']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`${join(dir, 'nope.jpg')}: no such image`);
  }, 60_000);
});

describe('`headstart eval builtin:centernet` on detection data', () => {
  /** Boxes drawn by hand around every object in two darknet photos, as a Roboflow COCO export (valid/ is evaluated). */
  async function handLabelled(root: string, extra: { name: string; box: Box }[] = []) {
    const boxes: Record<string, { name: string; box: Box }[]> = {
      'dog.jpg': [{ name: 'dog', box: [128, 224, 314, 537] }, { name: 'bicycle', box: [117, 124, 566, 450] }, { name: 'truck', box: [470, 76, 690, 172] }],
      'person.jpg': [{ name: 'person', box: [190, 112, 275, 375] }, { name: 'dog', box: [68, 262, 200, 345] }, { name: 'horse', box: [403, 138, 603, 342] }, ...extra],
    };
    const names = [...new Set(Object.values(boxes).flat().map((b) => b.name))];
    for (const split of ['train', 'valid']) {
      const files = split === 'train' ? ['dog.jpg'] : ['dog.jpg', 'person.jpg'];
      await mkdir(join(root, split), { recursive: true });
      let id = 1;
      const json = {
        categories: names.map((name, i) => ({ id: i + 1, name })),
        images: await Promise.all(files.map(async (file, i) => {
          await copyFile(join(DARKNET, file), join(root, split, file));
          const meta = await sharp(join(DARKNET, file)).metadata();
          return { id: i + 1, file_name: file, width: meta.width, height: meta.height };
        })),
        annotations: files.flatMap((file, i) => boxes[file]!.map(({ name, box }) => ({ id: id++, image_id: i + 1, category_id: names.indexOf(name) + 1, bbox: [box[0], box[1], box[2] - box[0], box[3] - box[1]], iscrowd: 0 }))),
      };
      await writeFile(join(root, split, '_annotations.coco.json'), JSON.stringify(json));
    }
    return root;
  }

  it('prints COCO\'s numbers for the validation split; the obvious objects are found (mAP50 > 0.5)', async () => {
    const data = await handLabelled(join(dir, 'hand'));
    const result = await runCli(['eval', 'builtin:centernet', data, '--json', '--cache-dir', join(dir, 'cache'), '--quiet']);
    expect(result.stderr).toBe('');
    const output = JSON.parse(result.stdout);
    expect(output).toMatchObject({ task: 'detect', split: 'validation', images: 2 });
    expect(output.metrics.mAP50).toBeGreaterThan(0.5);
    expect(output.metrics.mAP).toBeLessThanOrEqual(output.metrics.mAP50);
    const perClass = new Map<string, any>(output.metrics.perClass.map((c: any) => [c.name, c]));
    expect([...perClass.keys()].sort()).toEqual(['bicycle', 'dog', 'horse', 'person', 'truck']);
    expect(perClass.get('person').AP50).toBeGreaterThan(0.9);
    expect(perClass.get('dog').support).toBe(2);

    const unknown = await handLabelled(join(dir, 'hand-unknown'), [{ name: 'ant', box: [10, 10, 40, 40] }]);
    const refused = await runCli(['eval', 'builtin:centernet', unknown, '--cache-dir', join(dir, 'cache'), '--quiet']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('does not know class "ant"');
  }, 120_000);
});

describe('CenterNet peak decoding', () => {
  it('keeps 3×3 maxima only, best first, at most maxDetections, with boxes from the sides scaled to the image', () => {
    const grid = 8;
    const classes = 2;
    const heatmap = new Float32Array(grid * grid * classes);
    const sides = new Float32Array(grid * grid * 4);
    const set = (x: number, y: number, c: number, v: number, s: number[] = [0, 0, 0, 0]) => {
      heatmap[(y * grid + x) * classes + c] = v;
      sides.set(s, (y * grid + x) * 4);
    };
    set(2, 3, 0, 0.9, [4, 8, 12, 16]); // a peak
    set(3, 3, 0, 0.8); // its neighbour: suppressed
    set(3, 3, 1, 0.7, [1, 1, 1, 1]); // same cell, other class: a peak of its own
    set(6, 6, 0, 0.5, [100, 100, 100, 100]); // a peak whose box reaches outside: clipped
    set(0, 7, 1, 0.1); // below the threshold
    const options = { threshold: 0.2, maxDetections: 10, scaleX: 2, scaleY: 0.5, width: 60, height: 30 };
    const found = decodeCenterNet(heatmap, sides, grid, grid, classes, options);
    expect(found.map((d) => [d.label, d.score])).toEqual([[0, Math.fround(0.9)], [1, Math.fround(0.7)], [0, Math.fround(0.5)]]);
    // Cell (2, 3) is the point (8, 12) of the input (stride 4): [8 - 4, 12 - 8, 8 + 12, 12 + 16], then ×(2, 0.5).
    expect(found[0]!.box).toEqual([8, 2, 40, 14]);
    expect(found[2]!.box).toEqual([0, 0, 60, 30]);
    expect(decodeCenterNet(heatmap, sides, grid, grid, classes, { ...options, maxDetections: 1 })).toHaveLength(1);
  });
});
