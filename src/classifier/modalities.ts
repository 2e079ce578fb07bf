import type { Modality } from '../backbones/backbone.js';
import { usageError } from '../util/errors.js';
import type { ModalityAdapter } from './modality.js';

/** The adapter of a modality, imported on first use so image-only users never load text or audio code. */
export async function modalityAdapter(modality: Modality): Promise<ModalityAdapter> {
  switch (modality) {
    case 'image':
      return (await import('./image-modality.js')).imageModality as ModalityAdapter;
    case 'text':
      return (await import('./text-modality.js')).textModality as ModalityAdapter;
    case 'audio':
      return (await import('./audio-modality.js')).audioModality as ModalityAdapter;
    default:
      throw usageError(`unknown task "${String(modality)}" (expected image, text or audio)`);
  }
}

const TEXT_FILES = /\.(csv|tsv|jsonl|ndjson|txt)$/i;
const AUDIO_FILES = /\.(wav|wave)$/i;

/**
 * Guesses the task from the data: a CSV/TSV/JSONL file or a folder of .txt files is text, a folder
 * of WAV files is audio, anything else is images. `--task` overrides.
 */
export async function inferTask(path: string): Promise<Modality> {
  const { readdir, stat } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const info = await stat(path).catch(() => undefined);
  if (!info) return 'image';
  if (info.isFile()) return TEXT_FILES.test(path) ? 'text' : 'image';
  // Breadth-first over a few levels: class folders, or train/val/<class> folders.
  let frontier = [path];
  for (let depth = 0; depth < 3 && frontier.length; depth++) {
    const next: string[] = [];
    for (const dir of frontier.slice(0, 20)) {
      for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        if (entry.name.startsWith('.')) continue;
        if (entry.isDirectory()) next.push(join(dir, entry.name));
        else if (AUDIO_FILES.test(entry.name)) return 'audio';
        else if (TEXT_FILES.test(entry.name)) return 'text';
        else if (/\.(jpe?g|png|webp|gif|tiff?)$/i.test(entry.name)) return 'image';
      }
    }
    frontier = next;
  }
  return 'image';
}
