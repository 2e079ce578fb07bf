import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { pageGuard, renderPage } from './html.js';
import { REPORT_FILE } from './report.js';

/** What the language-model report draws. */
export interface LmReportData {
  kind: 'lm';
  base: string;
  perplexityBefore: number;
  perplexity: number;
  steps: number;
  seconds: number;
  trainTokens: number;
  validationTokens: number;
  chunkedDocuments: number;
  curve: { step: number; loss: number; validationLoss?: number; learningRate: number }[];
  samples: { prompt: string; before: string; after: string }[];
  settings: Record<string, unknown>;
}

/** Summary cards, the loss curves (training per step, held-out per evaluation), generations before and after, settings. */
const LM_SCRIPT = String.raw`
(function () {
  var d = REPORT;
  var summary = section('summary', 'Held-out perplexity');
  summary.appendChild(h('div', { class: 'cards' },
    card('before fine-tuning', num(d.perplexityBefore, 1), d.base),
    card('after', num(d.perplexity, 1), d.steps + ' steps in ' + seconds(d.seconds)),
    card('training tokens', String(d.trainTokens), d.chunkedDocuments + ' documents longer than a block were split'),
    card('held-out tokens', String(d.validationTokens))));
  var curves = section('curves', 'Loss');
  var box = chartBox('training loss per step and held-out loss per evaluation', true);
  curves.appendChild(box.box);
  window.headstartReport.charts.loss = new Chart(box.canvas, {
    type: 'line',
    data: { datasets: [
      { label: 'training', data: d.curve.map(function (p) { return { x: p.step, y: p.loss }; }), pointRadius: 0, borderWidth: 1 },
      { label: 'held-out', data: d.curve.filter(function (p) { return p.validationLoss !== undefined; }).map(function (p) { return { x: p.step, y: p.validationLoss }; }), pointRadius: 3 },
    ] },
    options: { parsing: false, scales: { x: { type: 'linear', title: { display: true, text: 'step' } }, y: { title: { display: true, text: 'cross-entropy (nats)' } } } },
  });
  if (d.samples.length) {
    var samples = section('samples', 'Greedy generations from the same prompts');
    samples.appendChild(table(['prompt', 'before', 'after'], d.samples.map(function (s) { return [s.prompt, s.before, s.after]; })));
  }
  section('settings', 'Settings').appendChild(keyValues(d.settings));
})();
`;

export async function writeLmReport(folder: string, data: Omit<LmReportData, 'kind'>): Promise<string> {
  const path = join(folder, REPORT_FILE);
  const html = await renderPage({
    title: 'headstart: fine-tuned language model',
    subtitle: `${data.base} · held-out perplexity ${data.perplexityBefore.toFixed(1)} → ${data.perplexity.toFixed(1)}`,
    data: { kind: 'lm', ...data },
    script: LM_SCRIPT,
  });
  await writeFileAtomic(path, html, { guard: pageGuard('report') });
  return path;
}
