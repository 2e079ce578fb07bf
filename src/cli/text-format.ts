import type { ModelManifest } from '../artifacts/model-folder.js';
import type { BaselineReport, TruncationReport } from '../classifier/text-classifier.js';

/** Lines `headstart train` adds for a text model: truncated texts, and the TF-IDF baseline beside this model. */
export function formatTextTraining(manifest: Pick<ModelManifest, 'metrics' | 'training'>): string[] {
  const lines: string[] = [];
  const truncation = manifest.training.truncation as TruncationReport | undefined;
  if (truncation) {
    lines.push(
      '',
      truncation.truncated === 0
        ? `no text was longer than ${truncation.maxTokens} tokens`
        : `truncated: ${truncation.truncated} of ${truncation.texts} texts were longer than ${truncation.maxTokens} tokens and lost their end`,
    );
  }
  const baseline = manifest.training.baseline as BaselineReport | undefined;
  if (baseline) {
    const cell = (m?: { accuracy: number; macro: { f1: number } }) => (m ? `${m.accuracy.toFixed(4).padEnd(10)}${m.macro.f1.toFixed(4).padEnd(10)}` : ''.padEnd(20));
    const splits = (['validation', 'test'] as const).filter((split) => manifest.metrics[split]);
    lines.push(
      '',
      `beside the from-scratch baseline, ${baseline.featureOutput}, same split, linear head (${baseline.seconds.toFixed(1)} s):`,
      `${''.padEnd(12)}${'this model'.padEnd(20)}TF-IDF`,
      `${''.padEnd(12)}${'accuracy  macro-F1  '.repeat(2).trimEnd()}`,
      ...splits.map((split) => `${split.padEnd(12)}${cell(manifest.metrics[split])}${cell(baseline.metrics[split])}`.trimEnd()),
    );
  }
  return lines;
}
