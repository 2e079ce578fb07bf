import sharp from 'sharp';
import type { ImagePreprocessing } from '../backbones/image-preprocessing.js';
import { dataError, messageOf } from '../util/errors.js';
import { Rng } from '../util/rng.js';

/** Random, mild augmentations for few-shot transfer: strong crops would cut the object out. */
export interface ImageAugmentation {
  /** Area fraction range of the random resized crop. */
  cropScale: [number, number];
  /** Aspect-ratio range of the crop. */
  cropRatio: [number, number];
  horizontalFlip: boolean;
  /** Brightness, contrast and saturation jitter, each a factor in [1 - j, 1 + j]. */
  colorJitter: number;
}

export const DEFAULT_IMAGE_AUGMENTATION: ImageAugmentation = {
  cropScale: [0.6, 1],
  cropRatio: [3 / 4, 4 / 3],
  horizontalFlip: true,
  colorJitter: 0.1,
};

const KERNELS = { nearest: 'nearest', bilinear: 'linear', bicubic: 'cubic' } as const;

/** Guards against decompression bombs: a 50-megapixel photo is fine, a 20000×20000 header is not. */
const MAX_INPUT_PIXELS = 100_000_000;

/**
 * Decodes image bytes and prepares the tensor a backbone expects: EXIF orientation applied,
 * alpha flattened onto white, greyscale and CMYK converted to sRGB, resized and cropped as the
 * preprocessing says, then scaled and normalised into the backbone's layout. With `augmentSeed`, a
 * random resized crop, flip and colour jitter drawn from that seed are applied first.
 */
export async function prepareImage(
  bytes: Uint8Array,
  pre: ImagePreprocessing,
  source: string | undefined,
  augment?: { seed: number; settings: ImageAugmentation },
): Promise<Float32Array> {
  let pixels: Buffer;
  try {
    pixels = await resizeToRgb(bytes, pre, augment);
  } catch (error) {
    throw dataError(`cannot decode image: ${cleanSharpMessage(messageOf(error))}`, source, error);
  }
  return toTensor(pixels, pre);
}

/**
 * The resized uint8 RGB pixels (HWC, width×height, no augmentation) that `prepareImage` goes on to
 * scale and normalise: what exported ONNX models take as input.
 */
export async function prepareImagePixels(bytes: Uint8Array, pre: ImagePreprocessing, source?: string): Promise<Uint8Array> {
  try {
    return await resizeToRgb(bytes, pre);
  } catch (error) {
    throw dataError(`cannot decode image: ${cleanSharpMessage(messageOf(error))}`, source, error);
  }
}

/** What an image's header says, before any pixel is decoded. */
export interface ImageHeader {
  width: number;
  height: number;
  /** EXIF orientation, 1–8. */
  orientation: number;
}

/** Headers already read, per buffer: the server checks a header for its limits, then decodes the same bytes. */
const headers = new WeakMap<Uint8Array, ImageHeader>();

/**
 * Reads the header only (no decoding, no pixel limit: callers judge the size). Remembered for the
 * same buffer, which saves the second read (~0.4 ms CPU of ~9 ms per photo) when a caller checks the
 * size and then prepares the image.
 */
export async function readImageHeader(bytes: Uint8Array): Promise<ImageHeader> {
  const known = headers.get(bytes);
  if (known) return known;
  const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  const header = { width: meta.width ?? 0, height: meta.height ?? 0, orientation: meta.orientation ?? 1 };
  headers.set(bytes, header);
  return header;
}

async function resizeToRgb(
  bytes: Uint8Array,
  pre: ImagePreprocessing,
  augment?: { seed: number; settings: ImageAugmentation },
): Promise<Buffer> {
  const kernel = KERNELS[pre.interpolation];
  // The header gives the geometry, so everything below runs as one libvips pipeline: 1.4× faster
  // than materialising the resized image and cropping it in a second pass (measured, hymenoptera).
  const meta = await readImageHeader(bytes);
  if (meta.width * meta.height > MAX_INPUT_PIXELS) {
    throw new Error(`Input image exceeds pixel limit (${meta.width}×${meta.height})`);
  }
  const turned = meta.orientation >= 5;
  let width = turned ? meta.height : meta.width;
  let height = turned ? meta.width : meta.height;
  if (!width || !height) throw new Error('image has no size');

  let image = sharp(bytes, { failOn: 'error', limitInputPixels: MAX_INPUT_PIXELS, pages: 1 }).rotate();
  if (augment) {
    const rng = new Rng(augment.seed);
    const crop = randomResizedCrop(width, height, augment.settings, rng);
    image = image.extract(crop);
    ({ width, height } = crop);
    if (augment.settings.horizontalFlip && rng.next() < 0.5) image = image.flop();
    const j = augment.settings.colorJitter;
    if (j > 0) {
      const brightness = rng.uniform(1 - j, 1 + j);
      const saturation = rng.uniform(1 - j, 1 + j);
      const contrast = rng.uniform(1 - j, 1 + j);
      image = image.modulate({ brightness, saturation }).linear(contrast, 128 * (1 - contrast));
    }
  }

  if (pre.resize === 'stretch') {
    image = image.resize(pre.width, pre.height, { fit: 'fill', kernel });
  } else if (pre.resize === 'center-square-crop') {
    image = image.resize(pre.width, pre.height, { fit: 'cover', position: 'centre', kernel });
  } else {
    // Resize the shortest edge, then centre-crop, as Hugging Face image processors do.
    const edge = pre.shortestEdge ?? Math.max(pre.width, pre.height);
    const scale = edge / Math.min(width, height);
    const resizedWidth = Math.max(pre.width, Math.round(width * scale));
    const resizedHeight = Math.max(pre.height, Math.round(height * scale));
    image = image.resize(resizedWidth, resizedHeight, { fit: 'fill', kernel }).extract({
      left: Math.floor((resizedWidth - pre.width) / 2),
      top: Math.floor((resizedHeight - pre.height) / 2),
      width: pre.width,
      height: pre.height,
    });
  }
  const { data, info } = await image
    .flatten({ background: { r: 255, g: 255, b: 255 } })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== pre.width || info.height !== pre.height) {
    throw new Error(`unexpected decoded shape ${info.width}×${info.height}×${info.channels}`);
  }
  return data;
}

/** torchvision's RandomResizedCrop: area and aspect drawn at random, ten tries, then a centre crop. */
function randomResizedCrop(width: number, height: number, settings: ImageAugmentation, rng: Rng) {
  const area = width * height;
  const [logLo, logHi] = [Math.log(settings.cropRatio[0]), Math.log(settings.cropRatio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(settings.cropScale[0], settings.cropScale[1]);
    const ratio = Math.exp(rng.uniform(logLo, logHi));
    const w = Math.round(Math.sqrt(target * ratio));
    const h = Math.round(Math.sqrt(target / ratio));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      return { left: rng.int(width - w + 1), top: rng.int(height - h + 1), width: w, height: h };
    }
  }
  const side = Math.min(width, height);
  return { left: Math.floor((width - side) / 2), top: Math.floor((height - side) / 2), width: side, height: side };
}

/** HWC uint8 RGB → float tensor, scaled, normalised and laid out as the backbone expects. */
export function toTensor(pixels: Uint8Array, pre: ImagePreprocessing): Float32Array {
  const { width, height } = pre;
  const plane = width * height;
  const out = new Float32Array(plane * 3);
  const [s0, s1, s2] = [0, 1, 2].map((c) => pre.rescale / pre.std[c]!) as [number, number, number];
  const [b0, b1, b2] = [0, 1, 2].map((c) => pre.mean[c]! / pre.std[c]!) as [number, number, number];
  // One pass, channel constants in locals: 2× faster than indexing per-channel arrays with i % 3
  // (0.9 → 0.45 ms CPU for 224×224 NHWC; it runs on the server's event loop for every request).
  if (pre.layout === 'NCHW') {
    for (let i = 0, p = 0; i < plane; i++, p += 3) {
      out[i] = pixels[p]! * s0 - b0;
      out[plane + i] = pixels[p + 1]! * s1 - b1;
      out[2 * plane + i] = pixels[p + 2]! * s2 - b2;
    }
  } else {
    for (let p = 0; p < plane * 3; p += 3) {
      out[p] = pixels[p]! * s0 - b0;
      out[p + 1] = pixels[p + 1]! * s1 - b1;
      out[p + 2] = pixels[p + 2]! * s2 - b2;
    }
  }
  return out;
}

/** sharp's messages are precise but prefixed with libvips internals; keep the useful part. */
function cleanSharpMessage(message: string): string {
  return message.replace(/^Input (buffer|file) /, '').replace(/\s+/g, ' ').trim();
}
