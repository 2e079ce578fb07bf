/**
 * What `headstart explain` and the server hand out: the JSON record of an explanation (for images
 * the map in the image's pixel grid, rounded to 4 decimals; per word for texts, per time window for
 * clips), and the picture written next to it (the photo's overlay, the clip's coloured waveform).
 */
import { basename, extname, join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import sharp from 'sharp';
import type { AudioExplanation } from './audio-explainer.js';
import type { BoxExplanation } from './detection-grad-cam.js';
import { normalised, type Grid } from './pixel-grid.js';
import type { ImageExplanation } from './image-explainer.js';
import type { Completeness } from './integrated-gradients.js';
import { heatColour, OVERLAY_GUARD, OVERLAY_SOFTWARE, overlayPng } from './image-map.js';
import type { TextExplanation } from './text-explainer.js';

export interface ImageExplanationJson {
  input: string;
  label: string;
  probability: number;
  peak: { x: number; y: number };
  map: { width: number; height: number; values: number[] };
  /** Integrated gradients: Σ attributions against f(x) − f(baseline), the steps used, whether `auto` hit its cap. */
  completeness?: Completeness;
}

export function imageExplanationJson(input: string, explanation: ImageExplanation): ImageExplanationJson {
  const { map } = explanation;
  return {
    input,
    label: explanation.label,
    probability: explanation.probability,
    peak: explanation.peak,
    map: gridJson(map),
    ...(explanation.completeness ? { completeness: explanation.completeness } : {}),
  };
}

/** Writes `<dir>/<input name>.<method>.png` (atomically; only replacing an earlier overlay) and returns its path. */
export async function writeImageOverlay(dir: string, input: string, photo: Uint8Array, explanation: ImageExplanation): Promise<string> {
  const path = join(dir, `${basename(input, extname(input))}.${explanation.method}.png`);
  await writeFileAtomic(path, await overlayPng(photo, explanation.map, input), { guard: OVERLAY_GUARD });
  return path;
}

export interface DetectionExplanationJson {
  input: string;
  detections: {
    label: string;
    score: number;
    /** [x1, y1, x2, y2] in the photo's pixels, as `headstart detect --json` gives them. */
    box: number[];
    /** Where the box's map peaks, in the photo's pixels. */
    peak: { x: number; y: number };
    /** Grad-CAM on the detector's feature grid, in [0, 1], which spans the whole photo (the detector stretches it); a photo-sized map per box would be megabytes. */
    map: { width: number; height: number; values: number[] };
  }[];
}

const gridJson = (grid: Grid) => ({ width: grid.width, height: grid.height, values: Array.from(grid.values, (v) => Math.round(v * 1e4) / 1e4) });

/** Per-box Grad-CAM as `headstart explain <detector> --json` prints it. */
export function detectionExplanationJson(input: string, boxes: BoxExplanation[], labels: readonly string[]): DetectionExplanationJson {
  const round = (v: number, scale: number) => Math.round(v * scale) / scale;
  return {
    input,
    detections: boxes.map((b) => ({
      label: labels[b.label] ?? String(b.label),
      score: b.score,
      box: b.box.map((v) => round(v, 100)),
      peak: b.peak,
      map: gridJson(normalised(b.raw)),
    })),
  };
}

/** Writes `<dir>/<input name>.box<k>-<label>.png` per explained box (atomically) and returns the paths. */
export async function writeBoxOverlays(dir: string, input: string, photo: Uint8Array, boxes: BoxExplanation[], labels: readonly string[]): Promise<string[]> {
  const paths: string[] = [];
  for (const [k, box] of boxes.entries()) {
    const label = (labels[box.label] ?? String(box.label)).replace(/[^\w.-]+/g, '_');
    const path = join(dir, `${basename(input, extname(input))}.box${k + 1}-${label}.png`);
    await writeFileAtomic(path, await overlayPng(photo, box.map, input), { guard: OVERLAY_GUARD });
    paths.push(path);
  }
  return paths;
}

export interface TextExplanationJson {
  input: string;
  label: string;
  probability: number;
  method: string;
  unit: 'logit' | 'probability';
  words: { text: string; start: number; end: number; score: number }[];
  /** Integrated gradients: Σ word scores against f(text) − f(baseline). */
  completeness?: { sum: number; expected: number; relativeError: number };
}

export function textExplanationJson(input: string, explanation: TextExplanation): TextExplanationJson {
  const round = (v: number) => Math.round(v * 1e6) / 1e6;
  return {
    input,
    label: explanation.label,
    probability: explanation.probability,
    method: explanation.method,
    unit: explanation.unit,
    words: explanation.words.map((word) => ({ ...word, score: round(word.score) })),
    ...(explanation.completeness ? { completeness: explanation.completeness } : {}),
  };
}

export interface AudioExplanationJson {
  input: string;
  label: string;
  probability: number;
  windows: { start: number; end: number; score: number }[];
}

export function audioExplanationJson(input: string, explanation: AudioExplanation): AudioExplanationJson {
  const round = (v: number) => Math.round(v * 1e6) / 1e6;
  return { input, label: explanation.label, probability: explanation.probability, windows: explanation.windows.map((w) => ({ start: round(w.start), end: round(w.end), score: round(w.score) })) };
}

/** The text with each word followed by its score, the three strongest marked: for terminals. */
export function highlightedText(explanation: TextExplanation): string {
  const strongest = new Set([...explanation.words].sort((a, b) => Math.abs(b.score) - Math.abs(a.score)).slice(0, 3));
  return explanation.words.map((word) => `${strongest.has(word) ? `**${word.text}**` : word.text}(${word.score >= 0 ? '+' : ''}${word.score.toFixed(3)})`).join(' ');
}

/** The waveform's envelope as an SVG, each 10 ms column coloured by how much silencing it costs the target. */
export function waveformSvg(explanation: AudioExplanation, width = 800, height = 160): string {
  const { envelope, timeline } = explanation;
  const max = Math.max(1e-9, ...timeline.map((v) => Math.max(0, v)));
  const peak = Math.max(1e-9, ...envelope);
  const column = width / envelope.length;
  const bars = Array.from(envelope, (amplitude, i) => {
    const [r, g, b] = heatColour(Math.max(0, timeline[i]!) / max).map(Math.round);
    const h = Math.max(1, (amplitude / peak) * (height - 10));
    return `<rect x="${(i * column).toFixed(2)}" y="${((height - h) / 2).toFixed(1)}" width="${Math.max(column, 1).toFixed(2)}" height="${h.toFixed(1)}" fill="rgb(${r},${g},${b})"/>`;
  }).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><rect width="100%" height="100%" fill="#fff"/>${bars}</svg>`;
}

/** Writes `<dir>/<input name>.occlusion.png`: the waveform coloured by occlusion scores. */
export async function writeAudioOverlay(dir: string, input: string, explanation: AudioExplanation): Promise<string> {
  const path = join(dir, `${basename(input, extname(input))}.${explanation.method}.png`);
  const png = await sharp(Buffer.from(waveformSvg(explanation))).png().withExif({ IFD0: { Software: OVERLAY_SOFTWARE } }).toBuffer();
  await writeFileAtomic(path, png, { guard: OVERLAY_GUARD });
  return path;
}
