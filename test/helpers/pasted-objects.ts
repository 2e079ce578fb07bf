/**
 * A localisation set made from real photos: the centre of an ant or bee photo (where the insect
 * usually is) pasted at a seeded random place onto the corner of another hymenoptera photo (the
 * corners show flowers, leaves and ground, seldom the insect), the label being the pasted photo's
 * class. Backgrounds are drawn from both classes alike, so only the pasted object decides the
 * label, and its box is known.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../src/util/rng.js';
import { HYMENOPTERA, writeImage } from './images.js';

export interface PastedBox {
  file: string;
  label: string;
  /** The pasted object's rectangle in the composite's pixels. */
  box: { left: number; top: number; width: number; height: number };
}

export const COMPOSITE_SIZE = 300;
export const OBJECT_SIZE = 150;

/** Writes `<root>/{train,val}/{ants,bees}/*.png`; returns the validation images' boxes. */
export async function writePastedObjectSet(root: string, perClass: { train: number; val: number }, seed = 7): Promise<PastedBox[]> {
  const rng = new Rng(seed);
  const classes = ['ants', 'bees'];
  const photos = async (split: string, label: string) => (await readdir(join(HYMENOPTERA, split, label))).sort().map((name) => join(HYMENOPTERA, split, label, name));
  const boxes: PastedBox[] = [];
  for (const split of ['train', 'val'] as const) {
    const sources = Object.fromEntries(await Promise.all(classes.map(async (label) => [label, await photos(split, label)] as const)));
    const backgrounds = [...sources['ants']!, ...sources['bees']!];
    for (const label of classes) {
      for (let i = 0; i < perClass[split]; i++) {
        const objectPhoto = sources[label]![rng.int(sources[label]!.length)]!;
        let background = backgrounds[rng.int(backgrounds.length)]!;
        if (background === objectPhoto) background = backgrounds[(backgrounds.indexOf(background) + 1) % backgrounds.length]!;
        const meta = await sharp(objectPhoto).rotate().metadata();
        const side = Math.floor(Math.min(meta.width!, meta.height!) * 0.6);
        const crop = await sharp(objectPhoto)
          .rotate()
          .extract({ left: Math.floor((meta.width! - side) / 2), top: Math.floor((meta.height! - side) / 2), width: side, height: side })
          .resize(OBJECT_SIZE, OBJECT_SIZE)
          .toBuffer();
        const box = { left: rng.int(COMPOSITE_SIZE - OBJECT_SIZE + 1), top: rng.int(COMPOSITE_SIZE - OBJECT_SIZE + 1), width: OBJECT_SIZE, height: OBJECT_SIZE };
        const backgroundMeta = await sharp(background).rotate().metadata();
        const corner = Math.floor(Math.min(backgroundMeta.width!, backgroundMeta.height!) * 0.45);
        const backgroundCrop = await sharp(background)
          .rotate()
          .extract({ left: rng.next() < 0.5 ? 0 : backgroundMeta.width! - corner, top: rng.next() < 0.5 ? 0 : backgroundMeta.height! - corner, width: corner, height: corner })
          .toBuffer();
        const composite = await sharp(backgroundCrop)
          .resize(COMPOSITE_SIZE, COMPOSITE_SIZE, { fit: 'cover' })
          .composite([{ input: crop, left: box.left, top: box.top }])
          .png()
          .toBuffer();
        const file = await writeImage(join(root, split, label, `${label}-${i}.png`), composite);
        if (split === 'val') boxes.push({ file, label, box });
      }
    }
  }
  return boxes;
}
