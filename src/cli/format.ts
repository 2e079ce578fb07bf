import type { SkippedInput } from '../data/dataset.js';
import type { ModelManifest } from '../artifacts/model-folder.js';

export function formatSkipped(skipped: SkippedInput[]): string[] {
  if (skipped.length === 0) return [];
  return ['', `skipped ${skipped.length} input${skipped.length > 1 ? 's' : ''}:`, ...skipped.map((s) => `  ${s.source}: ${s.reason}`)];
}

/** The machine-readable summary of a trained model. */
export function summaryOf(manifest: Omit<ModelManifest, 'head' | 'format' | 'formatVersion'>) {
  return {
    labels: manifest.labels,
    backbone: manifest.backbone,
    metrics: manifest.metrics,
    skipped: manifest.skipped,
    training: manifest.training,
  };
}
