/**
 * The backbones the studio offers per task: the builtins, the catalog's Hugging Face models already
 * in the local cache (so choosing one never waits on a download), and references the user gave on
 * the command line (`--backbone`). Training accepts only these: a request never names a path.
 */
import type { Modality } from '../backbones/backbone.js';
import { BUILTIN_AUDIO_BACKBONES, DEFAULT_AUDIO_BACKBONE } from '../backbones/audio-resolve.js';
import { BUILTIN_IMAGE_BACKBONES, DEFAULT_IMAGE_BACKBONE } from '../backbones/resolve.js';
import { BUILTIN_TEXT_BACKBONES, DEFAULT_TEXT_BACKBONE } from '../backbones/text-resolve.js';
import { TFIDF_BACKBONE } from '../backbones/text-tfidf.js';
import { hubCacheDir, scanHubCache } from '../hub/cache.js';
import { CATALOG } from '../hub/catalog.js';

export interface BackboneChoice {
  id: string;
  description: string;
  source: 'builtin' | 'cached' | 'command line';
  default?: boolean;
}

const DEFAULTS: Record<Modality, string> = { image: DEFAULT_IMAGE_BACKBONE, text: DEFAULT_TEXT_BACKBONE, audio: DEFAULT_AUDIO_BACKBONE };

export async function backboneChoices(task: Modality, extra: string[] = [], hubCache?: string): Promise<BackboneChoice[]> {
  const builtins: Record<string, { description: string }> =
    task === 'image' ? BUILTIN_IMAGE_BACKBONES : task === 'text' ? BUILTIN_TEXT_BACKBONES : BUILTIN_AUDIO_BACKBONES;
  const choices: BackboneChoice[] = extra.map((id) => ({ id, description: 'given on the command line', source: 'command line' }));
  for (const [name, { description }] of Object.entries(builtins)) choices.push({ id: `builtin:${name}`, description, source: 'builtin' });
  if (task === 'text') choices.push({ id: TFIDF_BACKBONE, description: 'TF-IDF word and character n-grams fitted on the project itself (no pre-trained model)', source: 'builtin' });
  const cached = new Set((await scanHubCache(hubCacheDir(hubCache)).catch(() => [])).filter((repo) => repo.sizeBytes > 0).map((repo) => `hf:${repo.repo}`.toLowerCase()));
  for (const entry of CATALOG) {
    if (entry.modality === task && entry.id.startsWith('hf:') && cached.has(entry.id.toLowerCase())) {
      choices.push({ id: entry.id, description: `${entry.name}: ${entry.task}, ${entry.features.dim}-d (in the Hugging Face cache)`, source: 'cached' });
    }
  }
  const preferred = extra[0] ?? DEFAULTS[task];
  return choices.map((choice) => (choice.id === preferred ? { ...choice, default: true } : choice));
}
