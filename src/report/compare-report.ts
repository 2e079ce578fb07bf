import type { CompareResult } from '../evaluate/compare.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { DetectionCompareResult } from '../detector/compare.js';
import { COMPARE_SCRIPT, DETECTION_COMPARE_SCRIPT } from './client.js';
import { pageGuard, renderPage } from './html.js';

/** What the compare page draws: the result, plus words and settings for people. */
export interface CompareReportData extends CompareResult {
  kind: 'compare';
  noun: string;
  settings: Record<string, unknown>;
}

/** The learning-curve page goes where users say, and only ever replaces an earlier headstart page. */
export const COMPARE_PAGE_GUARD = pageGuard('learning-curve page');

/** Writes the learning-curve page (one self-contained HTML file, atomically). */
export async function writeCompareReport(path: string, result: CompareResult, extra: { noun: string; settings: Record<string, unknown> }): Promise<void> {
  const data: CompareReportData = { kind: 'compare', ...result, ...extra };
  const [pretrained, scratch] = result.contenders;
  const html = await renderPage({
    title: `headstart compare: ${result.origin}`,
    subtitle: `${pretrained?.name} vs ${scratch?.name} · ${result.labels.length} classes · ${result.trainExamples} training ${extra.noun} · ${result.evaluation.n} ${result.evaluation.name} ${extra.noun}`,
    data,
    script: COMPARE_SCRIPT,
  });
  await writeFileAtomic(path, html, { guard: COMPARE_PAGE_GUARD });
}

/** The detection learning-curve page (mAP50 against the share of training images), same guard as the classifier's. */
export async function writeDetectionCompareReport(path: string, result: DetectionCompareResult, settings: Record<string, unknown>): Promise<void> {
  const [pretrained, scratch] = result.contenders;
  const html = await renderPage({
    title: `headstart compare: ${result.origin}`,
    subtitle: `${pretrained.name} vs ${scratch.name} detector · ${result.classes.length} classes · ${result.trainImages} training images · ${result.evaluation.n} validation images`,
    data: { ...result, settings },
    script: DETECTION_COMPARE_SCRIPT,
  });
  await writeFileAtomic(path, html, { guard: COMPARE_PAGE_GUARD });
}
