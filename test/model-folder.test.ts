import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModelFolder, MODEL_FOLDER_GUARD, saveModelFolder, type ManifestWithoutHead } from '../src/artifacts/model-folder.js';
import { writeDirAtomic, writeFileAtomic } from '../src/util/atomic.js';
import { HeadstartError } from '../src/util/errors.js';
import { tempDir } from './helpers/images.js';

const manifest: ManifestWithoutHead = {
  headstartVersion: '0.0.0-test',
  createdAt: '2026-01-01T00:00:00.000Z',
  modality: 'image',
  labels: ['a', 'b'],
  backbone: { id: 'x', sha256: 'f'.repeat(64), modality: 'image', featureDim: 3, featureOutput: 'out', preprocessing: {} },
  training: {},
  metrics: {},
  skipped: [{ source: 'bad.jpg', reason: 'cannot decode image' }],
};
const head = {
  type: 'linear' as const,
  config: { note: 'test' },
  tensors: {
    weight: { shape: [2, 3], data: Float32Array.from([0.1, -2.5, 3e-8, Math.PI, -0, 1e30]) },
    bias: { shape: [2], data: Float32Array.from([0.5, -0.5]) },
  },
};

describe('model folder', () => {
  it('round-trips the manifest and every head float bit for bit', async () => {
    const dir = join(await tempDir(), 'model');
    await saveModelFolder(dir, manifest, head);
    const loaded = await loadModelFolder(dir);
    expect(loaded.head.tensors.weight!.data).toEqual(head.tensors.weight.data);
    expect(loaded.head.tensors.bias!.shape).toEqual([2]);
    expect(loaded.manifest.labels).toEqual(['a', 'b']);
    expect(loaded.manifest.skipped).toEqual(manifest.skipped);
    expect(loaded.manifest.head.tensors.bias).toEqual({ shape: [2], dtype: 'float32', byteOffset: 24 });
    // head.bin is documented as little-endian float32 at the listed offsets.
    const bytes = await readFile(join(dir, 'head.bin'));
    expect(bytes.readFloatLE(24)).toBe(0.5);
    expect(JSON.parse(await readFile(join(dir, 'metrics.json'), 'utf8'))).toEqual(manifest.metrics);
  });

  it('replaces an existing model atomically and leaves it intact when writing fails', async () => {
    const dir = join(await tempDir(), 'model');
    await saveModelFolder(dir, manifest, head);
    const before = await readFile(join(dir, 'manifest.json'), 'utf8');
    await expect(
      writeDirAtomic(dir, async (temp) => {
        await writeFile(join(temp, 'manifest.json'), 'half');
        throw new Error('disk full');
      }, MODEL_FOLDER_GUARD),
    ).rejects.toThrow('disk full');
    expect(await readFile(join(dir, 'manifest.json'), 'utf8')).toBe(before);
    expect((await readdir(join(dir, '..'))).filter((n) => n.startsWith('.'))).toEqual([]);
    await saveModelFolder(dir, { ...manifest, labels: ['c', 'd'] }, head);
    expect((await loadModelFolder(dir)).manifest.labels).toEqual(['c', 'd']);
  });

  it('explains what is wrong with a folder that is not a model', async () => {
    const root = await tempDir();
    await expect(loadModelFolder(root)).rejects.toThrow(`${root}: not a headstart model folder (no manifest.json)`);
    const dir = join(root, 'model');
    await saveModelFolder(dir, manifest, head);
    await writeFile(join(dir, 'head.bin'), new Uint8Array(10));
    await expect(loadModelFolder(dir)).rejects.toThrow(/head\.bin: truncated: tensor "weight" needs bytes 0\.\.24, file has 10/);
    const newer = join(root, 'newer');
    await mkdir(newer);
    await writeFile(join(newer, 'manifest.json'), JSON.stringify({ format: 'headstart-model', formatVersion: 99 }));
    await expect(loadModelFolder(newer)).rejects.toThrow(/written by a newer headstart \(format 99/);
    await writeFile(join(newer, 'manifest.json'), '{ not json');
    await expect(loadModelFolder(newer)).rejects.toThrow(/manifest\.json: unreadable manifest/);
  });

  it('never replaces a folder of the user\'s: only a missing or empty folder or an earlier model', async () => {
    const root = await tempDir();
    // A photo folder given as --out: refused, every file left as it was, nothing staged left behind.
    const photos = join(root, 'photos');
    await mkdir(join(photos, 'cat'), { recursive: true });
    await writeFile(join(photos, 'cat', 'tom.jpg'), 'not really a jpeg');
    await writeFile(join(photos, 'notes.txt'), 'mine');
    const refusal = await saveModelFolder(photos, manifest, head).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(HeadstartError);
    expect((refusal as HeadstartError).kind).toBe('usage');
    expect((refusal as HeadstartError).message).toBe(
      `${photos}: refusing to write the model folder here: the folder is not empty (2 entries: "cat", "notes.txt") and is not ` +
        `a headstart model folder (one holding a manifest.json of format "headstart-model"), and writing would replace it; choose a new or empty folder`,
    );
    expect(await readFile(join(photos, 'cat', 'tom.jpg'), 'utf8')).toBe('not really a jpeg');
    expect((await readdir(photos)).sort()).toEqual(['cat', 'notes.txt']);
    expect(await readdir(root)).toEqual(['photos']);

    // Someone else's manifest.json is not ours either.
    const other = join(root, 'other');
    await mkdir(other);
    await writeFile(join(other, 'manifest.json'), JSON.stringify({ name: 'a web app' }));
    await expect(saveModelFolder(other, manifest, head)).rejects.toThrow(/refusing to write the model folder here: the folder is not empty \(1 entry: "manifest.json"\)/);
    expect(JSON.parse(await readFile(join(other, 'manifest.json'), 'utf8'))).toEqual({ name: 'a web app' });

    // A file where the folder would go.
    const file = join(root, 'model.txt');
    await writeFile(file, 'keep me');
    await expect(saveModelFolder(file, manifest, head)).rejects.toThrow(`${file}: refusing to write the model folder here: it is a file`);
    expect(await readFile(file, 'utf8')).toBe('keep me');

    // Allowed: an empty folder, and an earlier model (replaced whole).
    const empty = join(root, 'empty');
    await mkdir(empty);
    await saveModelFolder(empty, manifest, head);
    expect((await loadModelFolder(empty)).manifest.labels).toEqual(['a', 'b']);
    await writeFile(join(empty, 'stale.txt'), 'from the old model');
    await saveModelFolder(empty, { ...manifest, labels: ['x', 'y'] }, head);
    expect((await loadModelFolder(empty)).manifest.labels).toEqual(['x', 'y']);
    expect(await readdir(empty)).not.toContain('stale.txt');
  });

  it('writes a guarded file only over what the guard recognises', async () => {
    const root = await tempDir();
    const guard = { what: 'page', ours: 'a page of ours', isOurs: async (path: string) => (await readFile(path, 'utf8')).startsWith('ours') };
    const path = join(root, 'page.html');
    await writeFileAtomic(path, 'ours 1', { guard });
    await writeFileAtomic(path, 'ours 2', { guard });
    expect(await readFile(path, 'utf8')).toBe('ours 2');
    const theirs = join(root, 'theirs.html');
    await writeFile(theirs, 'their page');
    await expect(writeFileAtomic(theirs, 'ours', { guard })).rejects.toThrow(
      `${theirs}: refusing to write the page here: the file exists and is not a page of ours, and writing would replace it; choose another path`,
    );
    expect(await readFile(theirs, 'utf8')).toBe('their page');
    await expect(writeFileAtomic(root, 'ours', { guard })).rejects.toThrow(`${root}: refusing to write the page here: it is a folder; give a file path`);
  });
});
