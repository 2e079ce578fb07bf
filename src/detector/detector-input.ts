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
 * Stretches the image to the detector's square input, as CenterNet was trained (no letterbox), after
 * applying EXIF orientation — the same decoding `prepareImage` does, so boxes and pixels agree.
 */
export async function prepareDetectorInput(bytes: Uint8Array, size: number, source?: string): Promise<DetectorInput> {
  const preprocessing: ImagePreprocessing = {
    kind: 'image', width: size, height: size, resize: 'stretch', interpolation: 'bilinear', rescale: 1, mean: [0, 0, 0], std: [1, 1, 1], layout: 'NHWC',
  };
  let header;
  try {
    header = await readImageHeader(bytes);
  } catch (error) {
    throw dataError(`cannot decode image: ${messageOf(error)}`, source, error);
  }
  const pixels = await prepareImagePixels(bytes, preprocessing, source);
  const turned = header.orientation >= 5;
  return { pixels, width: turned ? header.height : header.width, height: turned ? header.width : header.height };
}
