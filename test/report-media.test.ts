import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeWav } from '../src/data/wav.js';
import { escapeHtml, jsonForScript } from '../src/report/html.js';
import { AUDIO_CLIP_SECONDS, THUMBNAIL_PIXELS, cutWav, mediaOf } from '../src/report/media.js';
import { makeImage, tempDir } from './helpers/images.js';

/** A WAV with an extra LIST chunk before the data, 16-bit stereo at 8 kHz, `seconds` long. */
function stereoWav(seconds: number): Uint8Array {
  const frames = 8000 * seconds;
  const list = new TextEncoder().encode('LIST\x04\x00\x00\x00INFO');
  const bytes = new Uint8Array(12 + 24 + list.length + 8 + frames * 4);
  const view = new DataView(bytes.buffer);
  const tag = (offset: number, text: string) => [...text].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  tag(0, 'RIFF');
  view.setUint32(4, bytes.length - 8, true);
  tag(8, 'WAVE');
  tag(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 2, true);
  view.setUint32(24, 8000, true);
  view.setUint32(28, 8000 * 4, true);
  view.setUint16(32, 4, true);
  view.setUint16(34, 16, true);
  bytes.set(list, 36);
  tag(36 + list.length, 'data');
  view.setUint32(40 + list.length, frames * 4, true);
  for (let i = 0; i < frames * 2; i++) view.setInt16(44 + list.length + i * 2, (i % 200) * 100, true);
  return bytes;
}

describe('report media', () => {
  it('cuts a long WAV to its first seconds at a whole frame, keeping the format', () => {
    const clip = cutWav(stereoWav(10), AUDIO_CLIP_SECONDS);
    const decoded = decodeWav(clip);
    expect(decoded.sampleRate).toBe(8000);
    expect(decoded.channels).toHaveLength(2);
    expect(decoded.channels[0]).toHaveLength(8000 * AUDIO_CLIP_SECONDS);
    expect(clip.length).toBe(44 + 8000 * AUDIO_CLIP_SECONDS * 4);
    expect(cutWav(stereoWav(1), AUDIO_CLIP_SECONDS).length).toBe(44 + 8000 * 4);
    expect(() => cutWav(new Uint8Array(20), 4)).toThrow(/not a RIFF\/WAVE file/);
  });

  it('makes square JPEG thumbnails, and notes files that are gone or unreadable instead of failing', async () => {
    const dir = await tempDir();
    const photo = join(dir, 'photo.png');
    await writeFile(photo, await makeImage(300, 120, { r: 10, g: 200, b: 30 }));
    const shown = await mediaOf('image', photo);
    expect('media' in shown && shown.media.src.startsWith('data:image/jpeg;base64,')).toBe(true);
    const jpeg = Buffer.from((shown as { media: { src: string } }).media.src.split(',')[1]!, 'base64');
    expect(await sharp(jpeg).metadata()).toMatchObject({ width: THUMBNAIL_PIXELS, height: THUMBNAIL_PIXELS, format: 'jpeg' });
    expect(await mediaOf('image', join(dir, 'gone.jpg'))).toEqual({ missing: 'file no longer there' });
    await writeFile(join(dir, 'broken.jpg'), 'not a jpeg');
    expect(await mediaOf('image', join(dir, 'broken.jpg'))).toEqual({ missing: expect.stringMatching(/^cannot show: /) });
    await writeFile(join(dir, 'clip.wav'), stereoWav(6));
    const audio = await mediaOf('audio', join(dir, 'clip.wav'));
    expect('media' in audio && audio.media.type).toBe('audio');
  });

  it('escapes text for HTML and JSON for a script element', () => {
    expect(escapeHtml(`<a href="x">Tom's & co</a>`)).toBe('&#60;a href=&#34;x&#34;&#62;Tom&#39;s &#38; co&#60;/a&#62;');
    const json = jsonForScript({ label: '</script><script>alert(1)</script>', line: 'a\u2028b' });
    expect(json).not.toContain('<');
    expect(json).not.toContain('\u2028');
    expect(JSON.parse(json)).toEqual({ label: '</script><script>alert(1)</script>', line: 'a\u2028b' });
  });
});
