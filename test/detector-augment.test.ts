import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { AugmentationView, Backbone } from '../src/backbones/backbone.js';
import type { Box } from '../src/detector/boxes.js';
import type { DetectionItem } from '../src/detector/detection-dataset.js';
import { PLACEMENT_PAD } from '../src/detector/detector-input.js';
import { detectorViews, placeBoxes, SCALE_CROP, trainingView, viewAugmentation, viewBoxes, viewPixels } from '../src/detector/detector-views.js';
import { extractFeatures, viewKeys } from '../src/features/extract.js';
import { sha256 } from '../src/util/hash.js';
import { runCli } from './helpers/cli.js';
import { makeColourFolder, tempDir } from './helpers/images.js';

const SIZE = 512;
// A 300×200 photo (as displayed): a yellow rectangle on green, near the top-left so zoomed-in views cut it. The
// two differ in red alone, so their blends along the rectangle's edges lie far from the grey padding's colour.
const [W, H] = [300, 200];
const RECT: Box = [20, 30, 140, 120];
const RECT_COLOUR = [220, 190, 50] as const;
const BACKGROUND = [20, 190, 50] as const;

async function displayed(): Promise<Buffer> {
  const rect = await sharp({ create: { width: RECT[2] - RECT[0], height: RECT[3] - RECT[1], channels: 3, background: { r: RECT_COLOUR[0], g: RECT_COLOUR[1], b: RECT_COLOUR[2] } } }).png().toBuffer();
  return sharp({ create: { width: W, height: H, channels: 3, background: { r: BACKGROUND[0], g: BACKGROUND[1], b: BACKGROUND[2] } } })
    .composite([{ input: rect, left: RECT[0], top: RECT[1] }])
    .png()
    .toBuffer();
}

/** Stored turned 90° anticlockwise with EXIF orientation 6, so viewers (and every decoder here) show `displayed`. */
async function exifTurned(): Promise<Buffer> {
  const stored = await sharp(await displayed()).rotate(270).withMetadata({ orientation: 6 }).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer();
  expect((await sharp(stored).metadata()).orientation).toBe(6);
  return stored;
}

const itemOf = (bytes: Uint8Array): DetectionItem => ({
  source: 'synthetic.png', width: W, height: H, boxes: [{ label: 0, box: RECT, crowd: false, area: 120 * 90 }], load: async () => bytes,
});

/** Colour jitter of one flat colour, written out independently of the pixel loop it checks. */
function jittered(colour: readonly number[], view: AugmentationView): number[] {
  const { brightness, contrast, saturation } = viewAugmentation(view);
  const grey = 0.299 * colour[0]! + 0.587 * colour[1]! + 0.114 * colour[2]!;
  return colour.map((c) => Math.min(255, Math.max(0, (grey + (c - grey) * saturation - 128) * contrast + 128 + brightness)));
}

/** The box a placement + flip should give, computed from the geometry alone: x → x·side/W + left (then mirrored), clipped. */
function expectedBox(view: AugmentationView): Box {
  const { placement, flip } = viewAugmentation(view);
  const { side, left, top } = placement!;
  let [x1, y1, x2, y2] = [(RECT[0] * side) / W + left, (RECT[1] * side) / H + top, (RECT[2] * side) / W + left, (RECT[3] * side) / H + top];
  [x1, y1, x2, y2] = [Math.max(0, x1), Math.max(0, y1), Math.min(SIZE, x2), Math.min(SIZE, y2)];
  return flip ? [SIZE - x2, y1, SIZE - x1, y2] : [x1, y1, x2, y2];
}

/**
 * The rectangle's extent as measured in the pixels: those at least half-way from the background's jittered colour to
 * the rectangle's, and near that line (which the grey padding is not).
 */
function measuredBox(pixels: Float32Array, view: AugmentationView): Box | undefined {
  const [rect, background] = [jittered(RECT_COLOUR, view), jittered(BACKGROUND, view)];
  const axis = rect.map((c, i) => c - background[i]!);
  const norm = axis.reduce((a, v) => a + v * v, 0);
  let [x1, y1, x2, y2] = [Infinity, Infinity, -Infinity, -Infinity];
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const p = (y * SIZE + x) * 3;
      const [r, g, b] = [pixels[p]! - background[0]!, pixels[p + 1]! - background[1]!, pixels[p + 2]! - background[2]!];
      const t = (r * axis[0]! + g * axis[1]! + b * axis[2]!) / norm;
      const residual = (r - t * axis[0]!) ** 2 + (g - t * axis[1]!) ** 2 + (b - t * axis[2]!) ** 2;
      if (t > 0.5 && residual < 30 ** 2) [x1, y1, x2, y2] = [Math.min(x1, x), Math.min(y1, y), Math.max(x2, x + 1), Math.max(y2, y + 1)];
    }
  }
  return x1 === Infinity ? undefined : [x1, y1, x2, y2];
}

const VIEWS = detectorViews(12, 7, true)!;

describe('detector views: random scale and crop, flip, colour jitter', () => {
  it.each([
    ['a plain PNG', displayed],
    ['a JPEG stored turned with EXIF orientation 6', exifTurned],
  ])('moves the pixels of %s and its boxes by the same affine map, within a pixel', async (_, make) => {
    const bytes = new Uint8Array(await make());
    const item = itemOf(bytes);
    const key = sha256(bytes);
    const sides: number[] = [];
    let clipped = 0;
    for (let index = 1; index <= VIEWS.count; index++) {
      const view = trainingView(key, VIEWS, index)!;
      const { placement } = viewAugmentation(view);
      sides.push(placement!.side);
      const boxes = viewBoxes(item, view);
      const pixels = await viewPixels(bytes, view);
      const expected = expectedBox(view);
      const visible = (expected[2] - expected[0]) * (expected[3] - expected[1]);
      const whole = (((RECT[2] - RECT[0]) * placement!.side) / W) * (((RECT[3] - RECT[1]) * placement!.side) / H);
      if (visible < whole - 1e-6) clipped++;
      if (visible < 0.2 * whole) {
        expect(boxes, `view ${index}: less than a fifth left, dropped`).toEqual([]);
        continue;
      }
      expect(boxes).toHaveLength(1);
      boxes[0]!.box.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 9));
      const measured = measuredBox(pixels, view)!;
      measured.forEach((v, i) => expect(Math.abs(v - expected[i]!), `view ${index} side ${i}: measured ${measured}, box ${expected}`).toBeLessThanOrEqual(1));
      // Inside (4 px in from the edges, past the bilinear blend), every pixel is the rectangle's jittered colour.
      const colour = jittered(RECT_COLOUR, view);
      let worst = 0;
      for (let y = Math.ceil(expected[1] + 4); y < expected[3] - 4; y++) {
        for (let x = Math.ceil(expected[0] + 4); x < expected[2] - 4; x++) {
          for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(pixels[(y * SIZE + x) * 3 + c]! - colour[c]!));
        }
      }
      expect(worst).toBeLessThan(4);
    }
    // The twelve views zoom both in and out, and some cut the rectangle.
    expect(Math.min(...sides)).toBeLessThan(SIZE);
    expect(Math.max(...sides)).toBeGreaterThan(SIZE);
    expect(clipped).toBeGreaterThan(0);
  }, 60_000);

  it('gives an EXIF-turned photo the same view as the photo stored upright', async () => {
    const upright = new Uint8Array(await displayed());
    const turned = new Uint8Array(await exifTurned());
    const view = trainingView(sha256(upright), VIEWS, 1)!;
    const [a, b] = await Promise.all([viewPixels(upright, view), viewPixels(turned, view)]);
    // Within a pixel: libvips resamples the turned photo's axis from its other end (the plain input does the same).
    const [boxA, boxB] = [measuredBox(a, view)!, measuredBox(b, view)!];
    boxA.forEach((v, i) => expect(Math.abs(v - boxB[i]!)).toBeLessThanOrEqual(1));
    let differ = 0;
    for (let i = 0; i < a.length; i++) if (Math.abs(a[i]! - b[i]!) > 8) differ++;
    expect(differ / a.length).toBeLessThan(0.01);
    expect(viewBoxes(itemOf(turned), view)).toEqual(viewBoxes(itemOf(upright), view));
  });

  it('clips boxes partly outside, drops those wholly outside or with too little left, keeps small uncut ones', () => {
    // Stretched 512 → 768 (×1.5), top-left at (−128, −200): the input shows x 128–640, y 200–712 of it.
    const placement = { side: 768, left: -128, top: -200 };
    const boxes: { label: number; box: Box }[] = [
      { label: 0, box: [100, 200, 200, 300] }, // → [22, 100, 172, 250], inside
      { label: 1, box: [50, 150, 150, 250] }, // → [−53, 25, 97, 175]: 65 % left, clipped at x = 0
      { label: 0, box: [0, 0, 50, 50] }, // → [−128, −200, −53, −125]: wholly outside
      { label: 1, box: [20, 150, 100, 250] }, // → [−98, 25, 22, 175]: 18 % left
      { label: 0, box: [85, 150, 86.5, 250] }, // → [−0.5, 25, 1.75, 175]: 78 % left but 1.75 px wide
      { label: 1, box: [300, 300, 301, 301] }, // → [322, 250, 323.5, 251.5]: small but whole
      { label: 0, box: [380, 380, 480, 480] }, // → [442, 370, 592, 520]: 44 % left, clipped at the right and bottom
    ];
    expect(placeBoxes(boxes, placement, SIZE)).toEqual([
      { label: 0, box: [22, 100, 172, 250] },
      { label: 1, box: [0, 25, 97, 175] },
      { label: 1, box: [322, 250, 323.5, 251.5] },
      { label: 0, box: [442, 370, 512, 512] },
    ]);
    // Zoomed out (512 → 256 at (100, 50)): everything stays, shrunk and moved.
    expect(placeBoxes([{ label: 0, box: [0, 0, 512, 512] }], { side: 256, left: 100, top: 50 }, SIZE)).toEqual([{ label: 0, box: [100, 50, 356, 306] }]);
  });

  it('repeats a view from the same seed and draws another for another view, run seed or image', async () => {
    const bytes = new Uint8Array(await displayed());
    const key = sha256(bytes);
    const one = trainingView(key, VIEWS, 3)!;
    const again = trainingView(key, detectorViews(12, 7, true), 3)!;
    expect(Buffer.from((await viewPixels(bytes, one)).buffer).equals(Buffer.from((await viewPixels(bytes, again)).buffer))).toBe(true);
    expect(viewBoxes(itemOf(bytes), one)).toEqual(viewBoxes(itemOf(bytes), again));
    const others = [trainingView(key, VIEWS, 4)!, trainingView(key, detectorViews(12, 8, true), 3)!, trainingView(sha256(new Uint8Array([1, 2, 3])), VIEWS, 3)!];
    for (const other of others) expect(viewAugmentation(other).placement).not.toEqual(viewAugmentation(one).placement);
    expect(Buffer.from((await viewPixels(bytes, one)).buffer).equals(Buffer.from((await viewPixels(bytes, others[0])).buffer))).toBe(false);
    // View 0 is the plain input, boxes only stretched.
    expect(trainingView(key, VIEWS, 0)).toBeUndefined();
    expect(viewBoxes(itemOf(bytes), undefined)).toEqual([{ label: 0, box: [(20 * SIZE) / W, (30 * SIZE) / H, (140 * SIZE) / W, (120 * SIZE) / H] }]);
  });

  it('keys scaled views apart from flip + jitter views in the cache, and leaves flip + jitter as they were', () => {
    const key = sha256(new Uint8Array([9]));
    const scaled = viewKeys(key, detectorViews(2, 0, true));
    const flipOnly = viewKeys(key, detectorViews(2, 0, false));
    expect(scaled[0]).toBe(flipOnly[0]);
    expect(scaled[1]).not.toBe(flipOnly[1]);
    expect(flipOnly).toEqual(viewKeys(key, { count: 2, seed: 0 }));
    const plain = viewAugmentation(trainingView(key, detectorViews(2, 0, false), 1)!);
    const withScale = viewAugmentation(trainingView(key, detectorViews(2, 0, true), 1)!);
    expect(plain.placement).toBeUndefined();
    expect({ ...withScale, placement: undefined }).toEqual({ ...plain, placement: undefined });
    expect(detectorViews(0, 0, true)).toBeUndefined();
    expect(() => viewAugmentation({ index: 1, seed: 1, settings: { scale: [1.4, 0.6] } })).toThrow(/scale must be \[low, high\]/);
    expect(SCALE_CROP.scale).toEqual([0.6, 1.4]);
  });

  it('draws training boxes for exactly the views extraction hands the frozen prefix', async () => {
    // A stand-in prefix that records the views `extractFeatures` asks it to prepare, as the trainer's does.
    const seen: { key: string; view?: AugmentationView }[] = [];
    const recorder: Backbone<Uint8Array, Float32Array> = {
      reference: { id: 'test:recorder', sha256: 'x', modality: 'image', featureDim: 1, featureOutput: 'none' },
      preprocessing: {},
      batchSize: 4,
      prepare: async (input, view) => {
        seen.push({ key: sha256(input), view });
        return viewPixels(input, view);
      },
      forward: async (batch) => new Float32Array(batch.length),
      dispose: async () => {},
    };
    const images = [new Uint8Array(await displayed()), new Uint8Array(await exifTurned())];
    const views = detectorViews(3, 5, true);
    await extractFeatures(recorder, images.map((bytes, i) => ({ source: `image-${i}`, load: async () => bytes })), { views });
    expect(seen).toHaveLength(images.length * 4);
    for (const { key, view } of seen) expect(view).toEqual(trainingView(key, views, view?.index ?? 0));
  });

  it('refuses --scale-crop outside detection, naming the flag', async () => {
    const dir = await tempDir('headstart-det-augment-');
    try {
      const data = await makeColourFolder(join(dir, 'colours'), 4);
      const result = await runCli(['train', data, '--scale-crop', '--out', join(dir, 'model'), '--quiet']);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain('--scale-crop is for detection');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
