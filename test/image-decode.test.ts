import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { isSrgbProfile, prepareImage, prepareImagePixels, toTensor } from '../src/data/image-decode.js';
import type { ImagePreprocessing } from '../src/backbones/image-preprocessing.js';
import { makeImage, pngClaimingSize } from './helpers/images.js';

const plain = (width: number, height: number, extra: Partial<ImagePreprocessing> = {}): ImagePreprocessing => ({
  kind: 'image',
  width,
  height,
  resize: 'stretch',
  interpolation: 'nearest',
  rescale: 1 / 255,
  mean: [0, 0, 0],
  std: [1, 1, 1],
  layout: 'NHWC',
  ...extra,
});

/** Two-colour image: left half `left`, right half `right`. */
async function halves(width: number, height: number, left: number[], right: number[]): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) raw.set(x < width / 2 ? left : right, (y * width + x) * 3);
  return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

describe('toTensor', () => {
  it('scales, normalises and lays out pixels as hand-computed', () => {
    // Two pixels: (255, 0, 51) and (0, 255, 102).
    const pixels = Uint8Array.from([255, 0, 51, 0, 255, 102]);
    const pre = plain(2, 1, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.25, 0.5], layout: 'NCHW' });
    // (p/255 - mean) / std per channel; NCHW puts each channel's plane together.
    const expected = [1, -1, -2, 2, -0.6, -0.2];
    Array.from(toTensor(pixels, pre)).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
    const nhwc = toTensor(pixels, { ...pre, layout: 'NHWC' });
    expect(Array.from(nhwc).map((v) => Number(v.toFixed(6)))).toEqual([1, -2, -0.6, -1, 2, -0.2]);
  });

  it('maps pixels to [-1, 1] with the TF.js MobileNet convention', () => {
    const pre = plain(1, 1, { rescale: 1 / 127.5, mean: [1, 1, 1] });
    expect(Array.from(toTensor(Uint8Array.from([0, 255, 127.5]), pre)).map((v) => Number(v.toFixed(4)))).toEqual([-1, 1, -0.0039]);
  });
});

describe('prepareImage', () => {
  it('honours EXIF orientation', async () => {
    // Stored 4×2, left half red; orientation 6 means "rotate 90° clockwise to view", so the
    // upright image is 2×4 with red on top.
    const stored = await halves(4, 2, [255, 0, 0], [0, 0, 255]);
    const withExif = await sharp(stored).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer();
    const tensor = await prepareImage(withExif, plain(2, 4), 'x.jpg');
    const pixel = (x: number, y: number) => Array.from(tensor.subarray((y * 2 + x) * 3, (y * 2 + x) * 3 + 3)).map(Math.round);
    expect(pixel(0, 0)).toEqual([1, 0, 0]);
    expect(pixel(1, 3)).toEqual([0, 0, 1]);
  });

  it('drops alpha by flattening onto white, and expands greyscale to RGB', async () => {
    const transparent = await sharp({ create: { width: 3, height: 3, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
      .png()
      .toBuffer();
    expect(Array.from(await prepareImage(transparent, plain(1, 1), 't.png'))).toEqual([1, 1, 1]);
    const grey = await sharp(Buffer.alloc(9, 51), { raw: { width: 3, height: 3, channels: 1 } }).png().toBuffer();
    expect(Array.from(await prepareImage(grey, plain(1, 1), 'g.png')).map((v) => v.toFixed(3))).toEqual(['0.200', '0.200', '0.200']);
  });

  it('resizes the shortest edge then centre-crops, as Hugging Face processors do', async () => {
    // 8×4: left half red, right half blue. Shortest edge 4 → stays 8×4; centre crop 2×4 straddles both halves.
    const image = await halves(8, 4, [255, 0, 0], [0, 0, 255]);
    const tensor = await prepareImage(image, plain(2, 4, { resize: 'shortest-edge-crop', shortestEdge: 4 }), 'c.png');
    expect(Array.from(tensor.subarray(0, 3)).map(Math.round)).toEqual([1, 0, 0]);
    expect(Array.from(tensor.subarray(3, 6)).map(Math.round)).toEqual([0, 0, 1]);
    // A centre square crop of the same image keeps the middle: 4×4 from columns 2..5.
    const square = await prepareImage(image, plain(4, 4, { resize: 'center-square-crop' }), 's.png');
    expect(Array.from(square.subarray(0, 3)).map(Math.round)).toEqual([1, 0, 0]);
    expect(Array.from(square.subarray(9, 12)).map(Math.round)).toEqual([0, 0, 1]);
  });

  it('gives the same pixels for the same augmentation seed and different ones for another', async () => {
    const image = await makeImage(64, 48, { r: 120, g: 80, b: 40 }, 'jpeg');
    const augmented = await halves(64, 48, [200, 10, 10], [10, 10, 200]);
    const settings = { cropScale: [0.5, 1] as [number, number], cropRatio: [0.75, 1.33] as [number, number], horizontalFlip: true, colorJitter: 0.2 };
    const a = await prepareImage(augmented, plain(8, 8), 'a', { seed: 1, settings });
    const b = await prepareImage(augmented, plain(8, 8), 'a', { seed: 1, settings });
    const c = await prepareImage(augmented, plain(8, 8), 'a', { seed: 2, settings });
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    expect((await prepareImage(image, plain(8, 8), 'p')).length).toBe(192);
  });

  it('rejects corrupt, truncated and empty files with a clear reason naming the file', async () => {
    const jpeg = await makeImage(64, 64, { r: 1, g: 2, b: 3 }, 'jpeg');
    const cases: [string, Uint8Array, RegExp][] = [
      ['random.jpg', Uint8Array.from({ length: 500 }, (_, i) => (i * 7919) % 256), /unsupported image format/],
      ['truncated.jpg', jpeg.subarray(0, Math.floor(jpeg.length / 2)), /premature end|truncated|VipsJpeg/i],
      ['empty.png', new Uint8Array(0), /empty|unsupported image format/i],
    ];
    for (const [name, bytes, reason] of cases) {
      const error = await prepareImage(bytes, plain(4, 4), name).catch((e) => e);
      expect(error, name).toBeInstanceOf(Error);
      expect(error.message, name).toMatch(new RegExp(`^${name.replace('.', '\\.')}: cannot decode image: `));
      expect(error.message, name).toMatch(reason);
    }
  });

  it('refuses decompression bombs by their header', async () => {
    // A PNG that claims 20000×20000 pixels; only the header needs reading to refuse it.
    const header = await pngClaimingSize(20000, 20000);
    await expect(prepareImage(header, plain(4, 4), 'bomb.png')).rejects.toThrow(/bomb\.png: cannot decode image: .*pixel limit/i);
  });

  it('skips converting embedded sRGB profiles but converts others, with the pixels of a full conversion', async () => {
    const noise = Buffer.from(Array.from({ length: 24 * 24 * 3 }, (_, i) => (i * 2654435761) >>> 24));
    for (const [profile, srgb] of [['srgb', true], ['p3', false]] as const) {
      const jpeg = await sharp(noise, { raw: { width: 24, height: 24, channels: 3 } }).withIccProfile(profile).jpeg({ quality: 95 }).toBuffer();
      const { icc } = await sharp(jpeg).metadata();
      expect(isSrgbProfile(icc!), profile).toBe(srgb);
      // sharp's default pipeline converts any embedded profile to sRGB.
      const converted = await sharp(jpeg).resize(16, 16, { fit: 'fill', kernel: 'nearest' }).raw().toBuffer();
      expect(Buffer.from(await prepareImagePixels(jpeg, plain(16, 16))).equals(converted), profile).toBe(true);
    }
  });
});
