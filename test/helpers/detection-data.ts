/**
 * A labelled detection set built from real photos, since none installs offline. Seeded: the same
 * seed writes the same bytes.
 *
 * Objects are the centre crops (the middle 70 %, where the insect usually is) of hymenoptera training
 * photos, class `ant` or `bee` by the photo's folder, pasted at varied sizes (12–45 % of the image's
 * short side, aspect 0.7–1.4) and places, overlapping others by at most IoU 0.2. Backgrounds are
 * hymenoptera validation photos, randomly cropped and blurred (σ 3) so the insects in them read as
 * background rather than as unlabelled objects. Each image holds 1–4 objects; every fifth holds none.
 *
 * Written as a Roboflow COCO export (`train/`, `valid/`, each with `_annotations.coco.json`), or
 * COCO's own layout; `cocoToYolo` and `cocoToVoc` convert that export into the other layouts from its
 * JSON alone, which is how the readers are tested against each other.
 */
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import sharp, { type OverlayOptions } from 'sharp';
import { Rng } from '../../src/util/rng.js';
import { HYMENOPTERA } from './images.js';

export type Box = [number, number, number, number];
export interface SyntheticImage {
  /** File name inside its split folder. */
  file: string;
  width: number;
  height: number;
  boxes: { label: number; box: Box }[];
}
export interface SyntheticSet {
  classes: string[];
  splits: { train: SyntheticImage[]; valid: SyntheticImage[] };
}

export const SYNTHETIC_CLASSES = ['ant', 'bee'];

export interface GenerateOptions {
  seed?: number;
  train: number;
  valid: number;
  /** Size range of the images' long side (default 320–448). */
  longSide?: [number, number];
}

/** Writes the images into `root/train/` and `root/valid/` and returns their boxes (no annotation file yet). */
export async function generateDetectionImages(root: string, options: GenerateOptions): Promise<SyntheticSet> {
  const rng = new Rng(options.seed ?? 0);
  const objects = await Promise.all(
    SYNTHETIC_CLASSES.map(async (name) => (await readdir(join(HYMENOPTERA, 'train', `${name}s`))).sort().slice(0, 40).map((f) => join(HYMENOPTERA, 'train', `${name}s`, f))),
  );
  const backgrounds = [
    ...(await readdir(join(HYMENOPTERA, 'val', 'ants'))).sort().slice(0, 30).map((f) => join(HYMENOPTERA, 'val', 'ants', f)),
    ...(await readdir(join(HYMENOPTERA, 'val', 'bees'))).sort().slice(0, 30).map((f) => join(HYMENOPTERA, 'val', 'bees', f)),
  ];
  const crops = new Map<string, Promise<Buffer>>();
  const cropOf = (path: string) => {
    if (!crops.has(path)) {
      crops.set(path, (async () => {
        const meta = await sharp(path).metadata();
        const [w, h] = [meta.width!, meta.height!];
        const region = { left: Math.round(w * 0.15), top: Math.round(h * 0.15), width: Math.round(w * 0.7), height: Math.round(h * 0.7) };
        return sharp(path).rotate().extract(region).resize(160, 160, { fit: 'fill' }).png().toBuffer();
      })());
    }
    return crops.get(path)!;
  };
  const set: SyntheticSet = { classes: SYNTHETIC_CLASSES, splits: { train: [], valid: [] } };
  const [lo, hi] = options.longSide ?? [320, 448];
  for (const split of ['train', 'valid'] as const) {
    const count = split === 'train' ? options.train : options.valid;
    await mkdir(join(root, split), { recursive: true });
    for (let i = 0; i < count; i++) {
      const long = Math.round(rng.uniform(lo, hi));
      const landscape = rng.next() < 0.7;
      const short = Math.round(long * rng.uniform(0.65, 0.85));
      const [width, height] = landscape ? [long, short] : [short, long];
      const background = backgrounds[rng.int(backgrounds.length)]!;
      const base = await sharp(background).rotate().resize(width, height, { fit: 'cover', position: rng.next() < 0.5 ? 'centre' : 'entropy' }).blur(3).toBuffer();
      const boxes: SyntheticImage['boxes'] = [];
      const layers: OverlayOptions[] = [];
      const wanted = i % 5 === 4 ? 0 : 1 + rng.int(4);
      for (let tries = 0; boxes.length < wanted && tries < 20; tries++) {
        const side = Math.min(width, height) * rng.uniform(0.12, 0.45);
        const aspect = rng.uniform(0.7, 1.4);
        const w = Math.max(8, Math.round(side * Math.sqrt(aspect)));
        const h = Math.max(8, Math.round(side / Math.sqrt(aspect)));
        const x = rng.int(width - w + 1);
        const y = rng.int(height - h + 1);
        const box: Box = [x, y, x + w, y + h];
        if (boxes.some((b) => iou(b.box, box) > 0.2)) continue;
        const label = rng.int(SYNTHETIC_CLASSES.length);
        const source = objects[label]![rng.int(objects[label]!.length)]!;
        const flip = rng.next() < 0.5;
        let crop = sharp(await cropOf(source)).resize(w, h, { fit: 'fill' });
        if (flip) crop = crop.flop();
        layers.push({ input: await crop.toBuffer(), left: x, top: y });
        boxes.push({ label, box });
      }
      const file = `${split}-${String(i).padStart(4, '0')}.jpg`;
      await writeFile(join(root, split, file), await sharp(base).composite(layers).jpeg({ quality: 88 }).toBuffer());
      set.splits[split].push({ file, width, height, boxes });
    }
  }
  return set;
}

/** The COCO JSON of one split (categories numbered from 1, as COCO does; boxes `[x, y, w, h]`). */
export function cocoJson(set: SyntheticSet, images: SyntheticImage[]) {
  let annotationId = 1;
  return {
    info: { description: 'headstart synthetic detection set' },
    categories: set.classes.map((name, i) => ({ id: i + 1, name, supercategory: 'insects' })),
    images: images.map((image, i) => ({ id: i + 1, file_name: image.file, width: image.width, height: image.height })),
    annotations: images.flatMap((image, i) =>
      image.boxes.map(({ label, box }) => ({
        id: annotationId++,
        image_id: i + 1,
        category_id: label + 1,
        bbox: [box[0], box[1], box[2] - box[0], box[3] - box[1]],
        area: (box[2] - box[0]) * (box[3] - box[1]),
        iscrowd: 0,
      })),
    ),
  };
}

/** Roboflow's export: `<split>/_annotations.coco.json` beside the split's images (which the generator wrote there). */
export async function writeRoboflowCoco(set: SyntheticSet, root: string): Promise<string> {
  for (const split of ['train', 'valid'] as const) {
    await writeFile(join(root, split, '_annotations.coco.json'), JSON.stringify(cocoJson(set, set.splits[split])));
  }
  return root;
}

/** Generates a set and writes it as a Roboflow COCO export in `root`. */
export async function makeRoboflowSet(root: string, options: GenerateOptions): Promise<SyntheticSet> {
  const set = await generateDetectionImages(root, options);
  await writeRoboflowCoco(set, root);
  return set;
}

/** Converts a Roboflow COCO export into Ultralytics' layout: images/<split>/, labels/<split>/*.txt, data.yaml. */
export async function cocoToYolo(cocoRoot: string, out: string): Promise<string> {
  const splits = { train: 'train', valid: 'val' } as const;
  let names: string[] = [];
  for (const [from, to] of Object.entries(splits)) {
    const json = JSON.parse(await readFile(join(cocoRoot, from, '_annotations.coco.json'), 'utf8'));
    const categories = [...json.categories].sort((a: any, b: any) => a.id - b.id);
    names = categories.map((c: any) => c.name);
    await mkdir(join(out, 'images', to), { recursive: true });
    await mkdir(join(out, 'labels', to), { recursive: true });
    for (const image of json.images) {
      await copyFile(join(cocoRoot, from, image.file_name), join(out, 'images', to, image.file_name));
      const lines = json.annotations
        .filter((a: any) => a.image_id === image.id)
        .map((a: any) => {
          const [x, y, w, h] = a.bbox;
          const cls = categories.findIndex((c: any) => c.id === a.category_id);
          return [cls, (x + w / 2) / image.width, (y + h / 2) / image.height, w / image.width, h / image.height].map((v) => (Number.isInteger(v) ? v : v.toFixed(6))).join(' ');
        });
      // Ultralytics writes no label file for an image without boxes.
      if (lines.length) await writeFile(join(out, 'labels', to, `${basename(image.file_name, extname(image.file_name))}.txt`), lines.join('\n') + '\n');
    }
  }
  await writeFile(join(out, 'data.yaml'), `path: .\ntrain: images/train\nval: images/val\nnames:\n${names.map((n, i) => `  ${i}: ${n}`).join('\n')}\n`);
  return out;
}

/** Converts a Roboflow COCO export into Pascal VOC: Annotations/, JPEGImages/, ImageSets/Main/{train,val}.txt. */
export async function cocoToVoc(cocoRoot: string, out: string): Promise<string> {
  await mkdir(join(out, 'Annotations'), { recursive: true });
  await mkdir(join(out, 'JPEGImages'), { recursive: true });
  await mkdir(join(out, 'ImageSets', 'Main'), { recursive: true });
  for (const [from, to] of [['train', 'train'], ['valid', 'val']] as const) {
    const json = JSON.parse(await readFile(join(cocoRoot, from, '_annotations.coco.json'), 'utf8'));
    const ids: string[] = [];
    for (const image of json.images) {
      const id = basename(image.file_name, extname(image.file_name));
      ids.push(id);
      await copyFile(join(cocoRoot, from, image.file_name), join(out, 'JPEGImages', image.file_name));
      const objects = json.annotations
        .filter((a: any) => a.image_id === image.id)
        .map((a: any) => {
          const [x, y, w, h] = a.bbox;
          const name = json.categories.find((c: any) => c.id === a.category_id).name;
          // VOC counts pixels from 1 and includes both ends.
          return `  <object><name>${name}</name><difficult>0</difficult><bndbox><xmin>${x + 1}</xmin><ymin>${y + 1}</ymin><xmax>${x + w}</xmax><ymax>${y + h}</ymax></bndbox></object>`;
        });
      const xml = `<annotation>\n  <folder>JPEGImages</folder>\n  <filename>${image.file_name}</filename>\n  <size><width>${image.width}</width><height>${image.height}</height><depth>3</depth></size>\n${objects.join('\n')}\n</annotation>\n`;
      await writeFile(join(out, 'Annotations', `${id}.xml`), xml);
    }
    await writeFile(join(out, 'ImageSets', 'Main', `${to}.txt`), ids.join('\n') + '\n');
  }
  return out;
}

function iou(a: Box, b: Box): number {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}
