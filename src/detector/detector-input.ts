import type { ImagePreprocessing } from '../backbones/image-preprocessing.js';
import { prepareImagePixels, readImageHeader } from '../data/image-decode.js';
import { dataError, messageOf } from '../util/errors.js';

/** A detector's view of an image: pixels stretched to its square input, and the displayed size boxes map back to. */
export interface DetectorInput {
  /** HWC uint8 RGB, `size`×`size`. */
  pixels: Uint8Array;
  /** The image as displayed (EXIF orientation applied): where returned boxes live. */
  width: number;
  height: number;
}

/**
 * Where the stretched image goes in an augmented view (detector fine-tuning's random scale and crop):
 * stretched to `side`×`side` instead of the input size, its top-left corner at (`left`, `top`) of the
 * input (negative: that much is cut off), the uncovered rest filled with `PLACEMENT_PAD`. A point
 * (x, y) of the stretched-to-input image lands at (x·side/size + left, y·side/size + top).
 */
export interface InputPlacement {
  side: number;
  left: number;
  top: number;
}

/** The grey of the uncovered input: the letterbox padding of YOLO inputs (Ultralytics' 114). */
export const PLACEMENT_PAD = 114;

/**
 * Stretches the image to the detector's square input, as CenterNet was trained (no letterbox), after
 * applying EXIF orientation — the same decoding `prepareImage` does, so boxes and pixels agree. With a
 * `placement`, the same decoding stretches to its side and the result is pasted at its offset, so an
 * augmented view differs from the plain input by that placement alone.
 */
export async function prepareDetectorInput(bytes: Uint8Array, size: number, source?: string, placement?: InputPlacement): Promise<DetectorInput> {
  const side = placement?.side ?? size;
  if (!(Number.isSafeInteger(side) && side > 0 && Number.isSafeInteger(placement?.left ?? 0) && Number.isSafeInteger(placement?.top ?? 0))) {
    throw new Error(`a placement takes whole pixels and a positive side, got ${JSON.stringify(placement)}`);
  }
  const preprocessing: ImagePreprocessing = {
    kind: 'image', width: side, height: side, resize: 'stretch', interpolation: 'bilinear', rescale: 1, mean: [0, 0, 0], std: [1, 1, 1], layout: 'NHWC',
  };
  let header;
  try {
    header = await readImageHeader(bytes);
  } catch (error) {
    throw dataError(`cannot decode image: ${messageOf(error)}`, source, error);
  }
  const stretched = await prepareImagePixels(bytes, preprocessing, source);
  const pixels = placement ? place(stretched, side, placement.left, placement.top, size) : stretched;
  const turned = header.orientation >= 5;
  return { pixels, width: turned ? header.height : header.width, height: turned ? header.width : header.height };
}

/** `side`×`side` HWC pixels pasted at (left, top) of a `size`×`size` canvas of `PLACEMENT_PAD`, clipped to it. */
function place(pixels: Uint8Array, side: number, left: number, top: number, size: number): Uint8Array {
  const out = new Uint8Array(size * size * 3).fill(PLACEMENT_PAD);
  const x0 = Math.max(0, left);
  const x1 = Math.min(size, left + side);
  if (x1 <= x0) return out;
  for (let y = Math.max(0, top); y < Math.min(size, top + side); y++) {
    const from = ((y - top) * side + (x0 - left)) * 3;
    out.set(pixels.subarray(from, from + (x1 - x0) * 3), (y * size + x0) * 3);
  }
  return out;
}
