import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import sharp from 'sharp';
import type { Modality } from '../backbones/backbone.js';
import { messageOf } from '../util/errors.js';

/** What a report shows of one example: a data-URI thumbnail or clip, or why there is none. */
export type ExampleMedia = { media: { type: 'image' | 'audio'; src: string } } | { missing: string };

export const THUMBNAIL_PIXELS = 96;
/** Clips longer than this are cut: a few seconds tell what a sound is, and keep the report small. */
export const AUDIO_CLIP_SECONDS = 4;
/** Non-WAV audio cannot be cut without decoding; it is embedded whole only when at most this big. */
const MAX_UNCUT_AUDIO_BYTES = 512 * 1024;

/** The example's file turned into something a page can show; never throws (a missing file is a note). */
export async function mediaOf(modality: Modality, source: string): Promise<ExampleMedia> {
  let bytes: Buffer;
  try {
    bytes = await readFile(source);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { missing: code === 'ENOENT' ? 'file no longer there' : `cannot read: ${messageOf(error)}` };
  }
  try {
    if (modality === 'image') return { media: { type: 'image', src: await thumbnail(bytes) } };
    if (modality === 'audio') return audioClip(bytes, source);
  } catch (error) {
    return { missing: `cannot show: ${messageOf(error).replace(/\s+/g, ' ')}` };
  }
  return { missing: `no preview for ${modality}` };
}

/** A square JPEG thumbnail (centre crop, EXIF orientation applied) as a data URI. */
export async function thumbnail(bytes: Uint8Array): Promise<string> {
  const jpeg = await sharp(bytes, { limitInputPixels: 100_000_000, pages: 1 })
    .rotate()
    .resize(THUMBNAIL_PIXELS, THUMBNAIL_PIXELS, { fit: 'cover' })
    .flatten({ background: { r: 255, g: 255, b: 255 } })
    .jpeg({ quality: 72 })
    .toBuffer();
  return `data:image/jpeg;base64,${jpeg.toString('base64')}`;
}

function audioClip(bytes: Buffer, source: string): ExampleMedia {
  const extension = extname(source).toLowerCase();
  if (extension === '.wav' || extension === '.wave' || bytes.subarray(0, 4).toString('latin1') === 'RIFF') {
    return { media: { type: 'audio', src: `data:audio/wav;base64,${Buffer.from(cutWav(bytes, AUDIO_CLIP_SECONDS)).toString('base64')}` } };
  }
  const mime = AUDIO_TYPES[extension];
  if (!mime) return { missing: `no preview for ${extension || 'this'} files` };
  if (bytes.byteLength > MAX_UNCUT_AUDIO_BYTES) return { missing: 'too long to embed' };
  return { media: { type: 'audio', src: `data:${mime};base64,${bytes.toString('base64')}` } };
}

const AUDIO_TYPES: Record<string, string> = { '.mp3': 'audio/mpeg', '.ogg': 'audio/ogg', '.oga': 'audio/ogg', '.flac': 'audio/flac', '.m4a': 'audio/mp4', '.webm': 'audio/webm' };

/**
 * The first `seconds` of a RIFF/WAVE file: the `fmt ` chunk kept, the `data` chunk cut at a whole
 * frame, every other chunk dropped, sizes rewritten. Throws on a file that is not WAVE.
 */
export function cutWav(bytes: Uint8Array, seconds: number): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (offset: number) => String.fromCharCode(...bytes.subarray(offset, offset + 4));
  if (bytes.byteLength < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new Error('not a RIFF/WAVE file');
  let format: Uint8Array | undefined;
  let data: Uint8Array | undefined;
  for (let offset = 12; offset + 8 <= bytes.byteLength; ) {
    const size = view.getUint32(offset + 4, true);
    const body = bytes.subarray(offset + 8, Math.min(bytes.byteLength, offset + 8 + size));
    if (tag(offset) === 'fmt ') format = body;
    else if (tag(offset) === 'data') data = body;
    offset += 8 + size + (size & 1);
  }
  if (!format || format.byteLength < 16 || !data) throw new Error('WAVE file without fmt and data chunks');
  const formatView = new DataView(format.buffer, format.byteOffset, format.byteLength);
  const byteRate = formatView.getUint32(8, true);
  const blockAlign = Math.max(1, formatView.getUint16(12, true));
  const keep = Math.min(data.byteLength, Math.floor((byteRate * seconds) / blockAlign) * blockAlign);
  const out = new Uint8Array(12 + 8 + format.byteLength + (format.byteLength & 1) + 8 + keep);
  const outView = new DataView(out.buffer);
  const writeTag = (offset: number, text: string) => out.set(Array.from(text, (c) => c.charCodeAt(0)), offset);
  writeTag(0, 'RIFF');
  outView.setUint32(4, out.byteLength - 8, true);
  writeTag(8, 'WAVE');
  writeTag(12, 'fmt ');
  outView.setUint32(16, format.byteLength, true);
  out.set(format, 20);
  const dataOffset = 20 + format.byteLength + (format.byteLength & 1);
  writeTag(dataOffset, 'data');
  outView.setUint32(dataOffset + 4, keep, true);
  out.set(data.subarray(0, keep), dataOffset + 8);
  return out;
}
