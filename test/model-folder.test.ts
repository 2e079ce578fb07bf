import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModelFolder, saveModelFolder, type ManifestWithoutHead } from '../src/artifacts/model-folder.js';
import { writeDirAtomic } from '../src/util/atomic.js';
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
      }),
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
});
