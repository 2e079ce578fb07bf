/**
 * What an uploaded example must be before it is stored: of the project's kind (an image sharp can
 * read, or a WAV file), within the size and pixel limits, judged from the bytes (never from the
 * name or the browser's content type), and stored under the extension of what it really is.
 */
import type { Modality } from '../backbones/backbone.js';
import { readImageHeader } from '../data/image-decode.js';
import { decodeWav } from '../data/wav.js';
import { HttpError } from '../serve/inputs.js';
import { messageOf } from '../util/errors.js';

export interface UploadLimits {
  /** Largest single example file. */
  maxFileBytes: number;
  /** Largest image, in pixels (from its header). */
  maxPixels: number;
  /** Longest clip, in seconds. */
  maxAudioSeconds: number;
}

export const DEFAULT_UPLOAD_LIMITS: UploadLimits = { maxFileBytes: 16 * 1024 * 1024, maxPixels: 40_000_000, maxAudioSeconds: 60 };

/** Formats stored as they come; sharp also reads others (SVG, HEIF…) that `headstart train` does not list. */
const IMAGE_EXTENSIONS: Record<string, string> = { jpeg: '.jpg', png: '.png', webp: '.webp', gif: '.gif', tiff: '.tif' };

/** The extension to store the bytes under, or a 4xx naming the file and what is wrong with it. */
export async function checkUpload(task: Modality, bytes: Uint8Array, name: string, limits: UploadLimits): Promise<string> {
  const where = `"${name.slice(0, 100)}"`;
  if (bytes.byteLength === 0) throw new HttpError(400, 'empty_file', `${where} is empty`);
  if (bytes.byteLength > limits.maxFileBytes) {
    throw new HttpError(413, 'file_too_large', `${where} is ${(bytes.byteLength / 1e6).toFixed(1)} MB; the limit per file is ${(limits.maxFileBytes / 1e6).toFixed(1)} MB`, 'body_too_large');
  }
  if (task === 'image') {
    let header;
    try {
      header = await readImageHeader(bytes);
    } catch (error) {
      throw new HttpError(415, 'not_an_image', `${where} is not an image headstart can read (${messageOf(error).replace(/^Input buffer /, '')})`, 'undecodable');
    }
    const extension = IMAGE_EXTENSIONS[header.format];
    if (!extension) throw new HttpError(415, 'not_an_image', `${where} is a ${header.format || 'unknown'} file; examples must be JPEG, PNG, WebP, GIF or TIFF`, 'undecodable');
    if (header.width * header.height > limits.maxPixels) {
      throw new HttpError(413, 'too_many_pixels', `${where} is ${header.width}×${header.height}; the limit is ${(limits.maxPixels / 1e6).toFixed(0)} MP`, 'too_many_pixels');
    }
    return extension;
  }
  if (task === 'audio') {
    let seconds: number;
    try {
      const audio = decodeWav(bytes);
      seconds = (audio.channels[0]?.length ?? 0) / audio.sampleRate;
    } catch (error) {
      throw new HttpError(415, 'not_a_wav', `${where} is not a WAV file headstart can read (${messageOf(error)}); record in the page or convert to WAV`, 'undecodable');
    }
    if (!(seconds > 0)) throw new HttpError(400, 'empty_file', `${where} holds no samples`);
    if (seconds > limits.maxAudioSeconds) throw new HttpError(413, 'clip_too_long', `${where} is ${seconds.toFixed(1)} s long; the limit is ${limits.maxAudioSeconds} s`, 'body_too_large');
    return '.wav';
  }
  throw new HttpError(415, 'unsupported_media_type', 'text projects take lines of text ({"texts": […]}), not files');
}
