import type { Backbone } from '../backbones/backbone.js';
import type { OnnxDtype } from '../backbones/hf-folder.js';
import { modalityAdapter } from '../classifier/modalities.js';
import type { BackboneOptions } from '../classifier/modality.js';
import { FeatureCache } from '../features/cache.js';
import { modelError } from '../util/errors.js';
import { hashJson } from '../util/hash.js';
import type { Reporter } from '../util/progress.js';
import type { BackboneRecipe } from './jobs.js';

/**
 * A worker's backbones, opened once per recipe and kept: the worker resolves the job's reference
 * itself (builtin, hub, path), exactly as loading a saved model does, and refuses to compute with a
 * graph or preprocessing other than the coordinator's.
 */
export class JobBackbones {
  private readonly open = new Map<string, Promise<Backbone<Uint8Array | string, unknown>>>();

  constructor(private readonly options: { cacheDir: string; reporter?: Reporter; hub?: BackboneOptions['hub'] }) {}

  async get(recipe: BackboneRecipe): Promise<Backbone<Uint8Array | string, unknown>> {
    const id = hashJson({ ...recipe });
    let opening = this.open.get(id);
    if (!opening) {
      opening = this.resolve(recipe);
      this.open.set(id, opening);
      // A failed open is not remembered: the next job tries again (the hub may be back).
      opening.catch(() => this.open.delete(id));
    }
    return opening;
  }

  private async resolve(recipe: BackboneRecipe): Promise<Backbone<Uint8Array | string, unknown>> {
    const adapter = await modalityAdapter(recipe.modality);
    const backbone = await adapter.openBackbone(recipe.id, {
      cacheDir: this.options.cacheDir,
      reporter: this.options.reporter,
      hub: this.options.hub,
      featureOutput: recipe.featureOutput,
      dtype: recipe.dtype as OnnxDtype | undefined,
      preprocessing: recipe.preprocessing,
    });
    const namespace = FeatureCache.namespaceOf(backbone);
    if (backbone.reference.sha256 !== recipe.sha256 || namespace !== recipe.namespace || backbone.reference.featureDim !== recipe.featureDim) {
      await backbone.dispose();
      const what = backbone.reference.sha256 !== recipe.sha256 ? `sha256 ${backbone.reference.sha256.slice(0, 12)}… ≠ ${recipe.sha256.slice(0, 12)}…` : 'the same graph with other preprocessing or feature output';
      throw modelError(`the backbone "${recipe.id}" this worker resolves is not the coordinator's (${what}); refusing to compute features with it`);
    }
    return backbone;
  }

  async dispose(): Promise<void> {
    const opened = await Promise.allSettled(this.open.values());
    this.open.clear();
    for (const result of opened) if (result.status === 'fulfilled') await result.value.dispose();
  }
}
