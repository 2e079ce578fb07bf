import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { createSession, ort } from '../backbones/onnx-session.js';
import { readImageHeader } from '../data/image-decode.js';
import { dataError, messageOf, modelError } from '../util/errors.js';
import { detectionPlacement, detectionsFromRows, parseExportMetadata, readOnnxMetadata, type ExportedDetection, type ExportedImageInput, type ExportMetadata } from '../web/format.js';

/**
 * A detector export run with onnxruntime-node as a consumer would: the photo placed into the input
 * as the metadata says (stretch or letterbox, with sharp), the [N, 6] rows mapped back to the
 * photo's pixels. The export's self-check and `bench/detect.ts` use it.
 */
export class ExportedDetector {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly metadata: ExportMetadata,
    readonly input: ExportedImageInput,
  ) {}

  static async load(model: string | Uint8Array, threads?: number): Promise<ExportedDetector> {
    const origin = typeof model === 'string' ? model : 'exported detector';
    const bytes = typeof model === 'string' ? await readFile(model) : model;
    let metadata: ExportMetadata;
    try {
      metadata = parseExportMetadata(readOnnxMetadata(bytes));
    } catch (error) {
      throw modelError(messageOf(error), origin, error);
    }
    if (metadata.output.kind !== 'detections' || metadata.input.kind !== 'image') throw modelError('not a detector export (its output is not [N, 6] detections)', origin);
    return new ExportedDetector(await createSession(bytes, origin, threads), metadata, metadata.input);
  }

  /** Rows of one image already at the input size (uint8 HWC RGB), mapped with `placement` to a width×height photo. */
  async detectPixels(pixels: Uint8Array, placement: { scaleX: number; scaleY: number; padX: number; padY: number }, width: number, height: number): Promise<ExportedDetection[]> {
    return detectionsFromRows(await this.rows(pixels), this.metadata.labels, placement, width, height);
  }

  /** The raw [N, 6] rows for pixels at the input size. */
  async rows(pixels: Uint8Array): Promise<Float32Array> {
    const { width, height, name } = this.input;
    if (pixels.length !== width * height * 3) throw dataError(`expected ${width}×${height} RGB pixels (${width * height * 3} bytes), got ${pixels.length}`);
    const result = await this.session.run({ [name]: new ort.Tensor('uint8', pixels, [1, height, width, 3]) }, [this.metadata.output.name]);
    return (result[this.metadata.output.name]!.data as Float32Array).slice();
  }

  /** A photo's bytes: EXIF-rotated, placed as the metadata says (sharp's resize, as the library's), detected. */
  async detect(bytes: Uint8Array, source?: string): Promise<ExportedDetection[]> {
    try {
      const header = await readImageHeader(bytes);
      const turned = header.orientation >= 5;
      const [w, h] = turned ? [header.height, header.width] : [header.width, header.height];
      const place = detectionPlacement(w, h, this.input);
      const pad = this.input.padValue ?? 0;
      let image = sharp(bytes).rotate();
      if (place.width !== w || place.height !== h) image = image.resize(place.width, place.height, { fit: 'fill', kernel: 'linear' });
      const { data } = await image
        .removeAlpha()
        .extend({ top: place.y, left: place.x, bottom: this.input.height - place.height - place.y, right: this.input.width - place.width - place.x, background: { r: pad, g: pad, b: pad } })
        .toColourspace('srgb')
        .raw()
        .toBuffer({ resolveWithObject: true });
      return this.detectPixels(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), place, w, h);
    } catch (error) {
      throw dataError(`cannot decode image: ${messageOf(error)}`, source, error);
    }
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
