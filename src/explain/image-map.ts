/**
 * Explanation maps drawn back onto the photo: from the backbone's input grid to the image's own
 * pixel grid (through the resize and crop the preprocessing applied), and as a PNG overlay.
 */
import sharp from 'sharp';
import type { ImagePreprocessing } from '../backbones/image-preprocessing.js';
import { inputFootprint } from '../data/image-decode.js';
import type { ReplaceGuard } from '../util/atomic.js';
import { dataError, messageOf } from '../util/errors.js';
import { sampleBilinear, type Grid } from './pixel-grid.js';

/** `grid` (on the input grid) sampled bilinearly at every pixel of the `width`×`height` image; 0 outside the crop. */
export function toImageGrid(grid: Grid, width: number, height: number, pre: Pick<ImagePreprocessing, 'width' | 'height' | 'resize' | 'shortestEdge'>): Grid {
  return sampleBilinear(grid, width, height, inputFootprint(width, height, pre));
}

/** Colour stops of the heat map: dark blue (0) → cyan → yellow → red (1). */
const STOPS: [number, number, number][] = [
  [48, 18, 59],
  [40, 130, 240],
  [30, 220, 200],
  [250, 220, 40],
  [220, 30, 20],
];

export function heatColour(value: number): [number, number, number] {
  const t = Math.min(1, Math.max(0, value)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(t));
  const f = t - i;
  const [a, b] = [STOPS[i]!, STOPS[i + 1]!];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

/**
 * The photo (EXIF-oriented) with the map (values in [0, 1], on the photo's grid) blended over it,
 * more opaque where the map is high, as PNG bytes.
 */
export async function overlayPng(photo: Uint8Array, map: Grid, source?: string): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await sharp(photo, { failOn: 'error' }).rotate().flatten({ background: { r: 255, g: 255, b: 255 } }).toColourspace('srgb').removeAlpha().resize(map.width, map.height, { fit: 'fill' }).raw().toBuffer();
  } catch (error) {
    throw dataError(`cannot decode image: ${messageOf(error)}`, source, error);
  }
  const out = Buffer.alloc(map.width * map.height * 3);
  for (let i = 0; i < map.values.length; i++) {
    const m = map.values[i]!;
    const alpha = 0.25 + 0.45 * m;
    const [r, g, b] = heatColour(m);
    out[i * 3] = data[i * 3]! * (1 - alpha) + r * alpha;
    out[i * 3 + 1] = data[i * 3 + 1]! * (1 - alpha) + g * alpha;
    out[i * 3 + 2] = data[i * 3 + 2]! * (1 - alpha) + b * alpha;
  }
  return sharp(out, { raw: { width: map.width, height: map.height, channels: 3 } }).png().withExif({ IFD0: { Software: OVERLAY_SOFTWARE } }).toBuffer();
}

/** Written into every overlay's EXIF, so a later run replaces its own overlays and nothing else. */
export const OVERLAY_SOFTWARE = 'headstart explain';

export const OVERLAY_GUARD: ReplaceGuard = {
  what: 'explanation overlay',
  ours: `a PNG headstart explain wrote (EXIF Software "${OVERLAY_SOFTWARE}")`,
  isOurs: async (path) => {
    try {
      return (await sharp(path).metadata()).exif?.toString('latin1').includes(OVERLAY_SOFTWARE) ?? false;
    } catch {
      return false;
    }
  },
};
