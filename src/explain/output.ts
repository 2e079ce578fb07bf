/**
 * What `headstart explain` and the server hand out: the JSON record of an explanation (the map in
 * the image's pixel grid, rounded to 4 decimals) and the overlay written next to it.
 */
import { basename, extname, join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import type { ImageExplanation } from './image-explainer.js';
import { OVERLAY_GUARD, overlayPng } from './image-map.js';

export interface ImageExplanationJson {
  input: string;
  label: string;
  probability: number;
  peak: { x: number; y: number };
  map: { width: number; height: number; values: number[] };
}

export function imageExplanationJson(input: string, explanation: ImageExplanation): ImageExplanationJson {
  const { map } = explanation;
  return {
    input,
    label: explanation.label,
    probability: explanation.probability,
    peak: explanation.peak,
    map: { width: map.width, height: map.height, values: Array.from(map.values, (v) => Math.round(v * 1e4) / 1e4) },
  };
}

/** Writes `<dir>/<input name>.<method>.png` (atomically; only replacing an earlier overlay) and returns its path. */
export async function writeImageOverlay(dir: string, input: string, photo: Uint8Array, explanation: ImageExplanation): Promise<string> {
  const path = join(dir, `${basename(input, extname(input))}.${explanation.method}.png`);
  await writeFileAtomic(path, await overlayPng(photo, explanation.map, input), { guard: OVERLAY_GUARD });
  return path;
}
