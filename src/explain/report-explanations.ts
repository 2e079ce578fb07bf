/**
 * Explanations for the model report (`headstart report --explain`): the most confident examples of
 * every confusion-matrix cell and the most confident mistakes (fastai's top losses) are explained
 * with the model's default method, and embedded as small pictures (images, clips) or scored words.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { Classifier } from '../classifier/classifier.js';
import type { ReportExplanation, ReportSplit } from '../report/report.js';
import { messageOf } from '../util/errors.js';
import type { Explanation } from './explain.js';
import { overlayPng } from './image-map.js';
import { waveformSvg } from './output.js';

/** Side of an explanation picture in the report: larger than a thumbnail, the whole photo kept. */
const PICTURE_PIXELS = 180;

export async function explainReportExamples(dir: string, splits: ReportSplit[], options: { perCell?: number; mistakes?: number; cacheDir?: string }): Promise<{ perCell: number; mistakes: number; methods: string[] }> {
  const perCell = options.perCell ?? 2;
  const mistakes = options.mistakes ?? 8;
  const classifier = await Classifier.load(dir, { cacheDir: options.cacheDir });
  const methods = new Set<string>();
  try {
    for (const split of splits) {
      const examples = split.examples ?? [];
      const byConfidence = [...examples].sort((a, b) => b.confidence - a.confidence);
      const chosen = new Set(byConfidence.filter((e) => e.label !== e.predicted).slice(0, mistakes));
      const perCellCount = new Map<string, number>();
      for (const e of byConfidence) {
        const key = `${e.label}/${e.predicted}`;
        const count = perCellCount.get(key) ?? 0;
        if (count < perCell) chosen.add(e);
        perCellCount.set(key, count + 1);
      }
      for (const example of chosen) {
        try {
          const input = classifier.manifest.modality === 'text' ? example.text : await readFile(example.source);
          if (input === undefined) continue;
          const explanation = await classifier.explain(input, { target: classifier.labels[example.predicted] });
          example.explanation = await forReport(explanation, input);
          methods.add(explanation.method);
        } catch (error) {
          // A file gone or unreadable is already noted by the preview; the report still gets written.
          example.explanation = { method: 'none', unit: `not explained: ${messageOf(error)}` };
        }
      }
    }
  } finally {
    await classifier.dispose();
  }
  return { perCell, mistakes, methods: [...methods] };
}

async function forReport(explanation: Explanation, input: Uint8Array | string): Promise<ReportExplanation> {
  if (explanation.modality === 'text') return { method: explanation.method, unit: explanation.unit, words: explanation.words.map((w) => ({ text: w.text, score: w.score })) };
  if (explanation.modality === 'audio') {
    const png = await sharp(Buffer.from(waveformSvg(explanation, 360, 80))).png().toBuffer();
    return { method: explanation.method, src: `data:image/png;base64,${png.toString('base64')}` };
  }
  const overlay = await overlayPng(input as Uint8Array, explanation.map);
  const jpeg = await sharp(overlay).resize(PICTURE_PIXELS, PICTURE_PIXELS, { fit: 'inside' }).jpeg({ quality: 75 }).toBuffer();
  return { method: explanation.method, src: `data:image/jpeg;base64,${jpeg.toString('base64')}` };
}
