import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readImageFolder, readLabelledImages } from '../src/data/image-folder.js';
import { stratifiedSplit } from '../src/data/dataset.js';
import { HeadstartError } from '../src/util/errors.js';
import { HYMENOPTERA, makeColourFolder, makeImage, tempDir, writeImage } from './helpers/images.js';

describe('stratifiedSplit', () => {
  const items = [
    ...Array.from({ length: 10 }, (_, i) => ({ source: `a${i}`, label: 0 })),
    ...Array.from({ length: 5 }, (_, i) => ({ source: `b${i}`, label: 1 })),
  ];

  it('holds out the same share of every class, at least one each', () => {
    const { train, validation } = stratifiedSplit(items, ['a', 'b'], { validationFraction: 0.2, seed: 1, origin: 'x' });
    expect(validation.filter((i) => i.label === 0)).toHaveLength(2);
    expect(validation.filter((i) => i.label === 1)).toHaveLength(1);
    expect(train).toHaveLength(12);
    expect(new Set([...train, ...validation].map((i) => i.source)).size).toBe(15);
  });

  it('depends on the seed and not on the order of the input', () => {
    const a = stratifiedSplit(items, ['a', 'b'], { seed: 7, origin: 'x' }).validation.map((i) => i.source);
    const b = stratifiedSplit([...items].reverse(), ['a', 'b'], { seed: 7, origin: 'x' }).validation.map((i) => i.source);
    const c = stratifiedSplit(items, ['a', 'b'], { seed: 8, origin: 'x' }).validation.map((i) => i.source);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it('refuses a class too small to split, naming it', () => {
    const small = [...items.slice(0, 10), { source: 'b0', label: 1 }];
    expect(() => stratifiedSplit(small, ['a', 'b'], { origin: 'data/' })).toThrow(/class "b" has 1 item\(s\)/);
  });
});

describe('readImageFolder', () => {
  it('reads <root>/<class>/ and splits it stratified and seeded', async () => {
    const root = await makeColourFolder(join(await tempDir(), 'colours'), 10);
    const first = await readImageFolder(root, { seed: 3 });
    const again = await readImageFolder(root, { seed: 3 });
    expect(first.classes).toEqual(['blue', 'red']);
    expect(first.train).toHaveLength(16);
    expect(first.validation).toHaveLength(4);
    expect(first.validation.map((i) => i.source)).toEqual(again.validation.map((i) => i.source));
    expect(first.validationSource).toEqual({ heldOutFraction: 0.2, seed: 3 });
  });

  it('uses given train/val/test folders as they are', async () => {
    const dataset = await readImageFolder(HYMENOPTERA);
    expect(dataset.classes).toEqual(['ants', 'bees']);
    expect(dataset.train).toHaveLength(245);
    expect(dataset.validation).toHaveLength(153);
    expect(dataset.validation.filter((i) => i.label === 0)).toHaveLength(70);
    expect(dataset.validationSource).toBe('given');
  });

  it('lists files that are not images as skipped, with the reason', async () => {
    const root = await makeColourFolder(join(await tempDir(), 'mixed'), 3);
    await writeFile(join(root, 'red', 'notes.txt'), 'hello');
    await writeFile(join(root, 'red', '.DS_Store'), 'junk');
    const dataset = await readImageFolder(root);
    expect(dataset.skipped).toEqual([{ source: join(root, 'red', 'notes.txt'), reason: expect.stringMatching(/not one of the image files \(\.txt\)/) }]);
    expect(dataset.train.length + dataset.validation.length).toBe(6);
  });

  it('needs at least two classes', async () => {
    const root = await makeColourFolder(join(await tempDir(), 'one'), 3, ['red']);
    await expect(readImageFolder(root)).rejects.toThrow(/found 1 class \(red\); a classifier needs at least two/);
  });

  it('names an empty class', async () => {
    const root = await makeColourFolder(join(await tempDir(), 'empty'), 3);
    await mkdir(join(root, 'green'));
    const error = await readImageFolder(root).catch((e) => e);
    expect(error).toBeInstanceOf(HeadstartError);
    expect(error.message).toMatch(/class "green" contain no usable examples/);
    expect(error.file).toBe(root);
  });

  it('refuses a missing folder and a file', async () => {
    const dir = await tempDir();
    await expect(readImageFolder(join(dir, 'nope'))).rejects.toThrow(/nope: no such folder/);
    const file = await writeImage(join(dir, 'x.png'), await makeImage(4, 4, { r: 0, g: 0, b: 0 }));
    await expect(readImageFolder(file)).rejects.toThrow(/expected a folder of image files \(one sub-folder per class\), found a file/);
  });

  it('refuses a validation class the training set does not have', async () => {
    const root = await tempDir();
    await makeColourFolder(join(root, 'train'), 3);
    await makeColourFolder(join(root, 'val'), 2, ['red', 'green']);
    await expect(readImageFolder(root)).rejects.toThrow(/class folder "green" is not one of the model's classes \(blue, red\)/);
  });

  it('reads a labelled folder against known classes for evaluation', async () => {
    const root = await makeColourFolder(join(await tempDir(), 'eval'), 2, ['red']);
    const { items } = await readLabelledImages(root, ['blue', 'red']);
    expect(items.map((i) => i.label)).toEqual([1, 1]);
  });
});
