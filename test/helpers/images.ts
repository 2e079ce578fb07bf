import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';

export const SHARED = new URL('../../../shared/', import.meta.url).pathname;
export const HYMENOPTERA = join(SHARED, 'data/images/hymenoptera');

export async function tempDir(prefix = 'headstart-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A solid-colour (or gradient) image of the given size and format. */
export async function makeImage(
  width: number,
  height: number,
  colour: { r: number; g: number; b: number },
  format: 'png' | 'jpeg' | 'webp' = 'png',
): Promise<Buffer> {
  const image = sharp({ create: { width, height, channels: 3, background: colour } });
  return image[format]().toBuffer();
}

export async function writeImage(path: string, bytes: Uint8Array): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
  return path;
}

/**
 * A tiny ImageFolder of visually distinct classes: red-ish vs blue-ish squares with some
 * brightness variation, `perClass` images each.
 */
export async function makeColourFolder(root: string, perClass: number, classes = ['blue', 'red']): Promise<string> {
  const colours: Record<string, (i: number) => { r: number; g: number; b: number }> = {
    red: (i) => ({ r: 200 + (i % 5) * 10, g: 20 + i * 3, b: 30 }),
    blue: (i) => ({ r: 20, g: 40 + i * 3, b: 200 + (i % 5) * 10 }),
    green: (i) => ({ r: 30, g: 200 + (i % 5) * 10, b: 20 + i * 3 }),
  };
  for (const name of classes) {
    for (let i = 0; i < perClass; i++) {
      await writeImage(join(root, name, `${name}-${i}.png`), await makeImage(40 + i, 30 + i, colours[name]!(i)));
    }
  }
  return root;
}

/** A real small PNG whose header claims `width`×`height` (a decompression-bomb header). */
export async function pngClaimingSize(width: number, height: number): Promise<Buffer> {
  const png = Buffer.from(await makeImage(8, 8, { r: 0, g: 0, b: 0 }));
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
  return png;
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
