import type { ModelManifest } from '../artifacts/model-folder.js';
import { describeUnfreezeChoice, type UnfreezeChoice } from '../finetune/classifier-hooks.js';

/** After `train --unfreeze auto`: which backbone was kept, and the two validation accuracies. */
export function formatUnfreezeChoice(manifest: Omit<ModelManifest, 'head' | 'format' | 'formatVersion'>): string[] {
  const choice = manifest.training.unfreezeAuto as UnfreezeChoice | undefined;
  return choice ? ['', describeUnfreezeChoice(choice)] : [];
}
