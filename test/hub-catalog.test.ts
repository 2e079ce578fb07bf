import { describe, expect, it } from 'vitest';
import { CATALOG, findCatalogEntry } from '../src/hub/catalog.js';
import { parseModelReference } from '../src/hub/reference.js';
import { BUILTIN_IMAGE_BACKBONES } from '../src/backbones/resolve.js';

const FIELDS = ['id', 'name', 'modality', 'task', 'upstream', 'onnxComponent', 'input', 'features', 'parameters', 'licence', 'downloadMB', 'note'];

describe('catalog', () => {
  it('has complete entries with well-formed ids and positive numbers', () => {
    expect(CATALOG.length).toBeGreaterThanOrEqual(15);
    for (const entry of CATALOG) {
      for (const field of FIELDS) expect(entry[field as keyof typeof entry], `${entry.id}.${field}`).toBeDefined();
      for (const text of [entry.name, entry.task, entry.upstream, entry.onnxComponent, entry.licence, entry.note, entry.features.source]) {
        expect(text.trim().length, entry.id).toBeGreaterThan(0);
      }
      const reference = parseModelReference(entry.id);
      expect(['hf', 'builtin']).toContain(reference.kind);
      if (reference.kind === 'hf') {
        expect(reference.revision).toBe('main');
        expect(entry.id).toMatch(/^hf:(Xenova|onnx-community)\/[\w.-]+$/);
        expect(entry.downloadMB.fp32, entry.id).toBeGreaterThan(0);
      } else {
        expect(entry.downloadMB).toEqual({});
      }
      for (const mb of Object.values(entry.downloadMB)) expect(mb).toBeGreaterThan(0);
      expect(entry.features.dim).toBeGreaterThan(0);
      expect(Number.isInteger(entry.features.dim)).toBe(true);
      expect(entry.parameters).toBeGreaterThan(1e6);
      expect(entry.input.modality).toBe(entry.modality);
      if (entry.input.modality === 'image') {
        expect(entry.input.size).toBeGreaterThan(0);
        expect(entry.input.mean).toHaveLength(3);
        expect(entry.input.std.every((s) => s > 0)).toBe(true);
      } else if (entry.input.modality === 'text') {
        expect(entry.input.maxTokens).toBeGreaterThan(0);
      } else {
        expect(entry.input.sampleRate).toBeGreaterThan(0);
        expect(entry.input.melBins).toBeGreaterThan(0);
      }
    }
    expect(new Set(CATALOG.map((e) => e.id)).size).toBe(CATALOG.length);
  });

  it('covers the recommended backbones of each modality', () => {
    const ids = CATALOG.map((e) => e.id);
    for (const id of [
      'hf:Xenova/resnet-18',
      'hf:Xenova/resnet-50',
      'hf:onnx-community/mobilenet_v2_1.0_224',
      'hf:Xenova/vit-base-patch16-224-in21k',
      'hf:Xenova/convnext-tiny-224',
      'hf:Xenova/dinov2-small',
      'hf:Xenova/clip-vit-base-patch32',
      'hf:Xenova/all-MiniLM-L6-v2',
      'hf:Xenova/bge-small-en-v1.5',
      'hf:Xenova/bert-base-uncased',
      'hf:Xenova/distilbert-base-uncased',
      'hf:Xenova/whisper-tiny',
    ]) {
      expect(ids).toContain(id);
    }
    expect(findCatalogEntry('hf:Xenova/clip-vit-base-patch32@main')?.onnxComponent).toBe('vision_model');
    expect(findCatalogEntry('hf:xenova/whisper-tiny')?.onnxComponent).toBe('encoder_model');
    expect(findCatalogEntry('./some/folder')).toBeUndefined();
  });

  it('lists exactly the builtin backbones that ship with headstart', () => {
    const builtins = CATALOG.filter((e) => e.id.startsWith('builtin:'));
    expect(builtins.map((e) => e.id).sort()).toEqual(Object.keys(BUILTIN_IMAGE_BACKBONES).map((n) => `builtin:${n}`).sort());
    for (const entry of builtins) {
      const builtin = BUILTIN_IMAGE_BACKBONES[entry.id.slice('builtin:'.length) as keyof typeof BUILTIN_IMAGE_BACKBONES];
      expect(entry.input.modality === 'image' && entry.input.size).toBe(builtin.size);
      expect(builtin.description).toContain(`${entry.features.dim}-d`);
    }
  });
});
