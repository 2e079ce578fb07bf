import { open, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ReplaceGuard } from '../util/atomic.js';
import { COMMON_SCRIPT } from './client.js';

/** Every page {@link renderPage} writes carries this footer, within its first few kB (before the data). */
const PAGE_FOOTER = '<footer>Written by headstart.';
const FOOTER_WITHIN_BYTES = 64 * 1024;

/** Whether `path` is a page headstart wrote (a report or a learning curve), so writing over it loses nothing. */
export async function isHeadstartPage(path: string): Promise<boolean> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return false;
  try {
    const buffer = Buffer.alloc(FOOTER_WITHIN_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString('utf8').includes(PAGE_FOOTER);
  } finally {
    await handle.close();
  }
}

/** Pages go where users say (`--out`); they only ever replace an earlier headstart page. */
export function pageGuard(what: string): ReplaceGuard {
  return { what, ours: 'an HTML page headstart wrote', isOurs: isHeadstartPage };
}

/** Text placed in HTML: the five characters that can change its meaning, escaped. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * JSON safe inside a `<script type="application/json">`: `<` is escaped so data can never close the
 * element, and U+2028/2029 so the text stays valid wherever it is pasted as a JS literal.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

let chartLibraries: Promise<string> | undefined;

/**
 * Chart.js and its matrix (heatmap) controller, read from node_modules and inlined, so a report opens
 * offline and never fetches anything. Source-map comments are dropped (a browser would try to load them).
 */
export function chartLibrarySource(): Promise<string> {
  chartLibraries ??= (async () => {
    const require = createRequire(import.meta.url);
    const files = [
      join(dirname(require.resolve('chart.js')), 'chart.umd.min.js'),
      join(dirname(require.resolve('chartjs-chart-matrix')), 'chartjs-chart-matrix.min.js'),
    ];
    const sources = await Promise.all(files.map((file) => readFile(file, 'utf8')));
    return sources.map((source) => source.replace(/^\/\/# sourceMappingURL=.*$/gm, '').replace(/<\/script/gi, '<\\/script')).join('\n');
  })();
  return chartLibraries;
}

/**
 * One self-contained HTML page: a Content-Security-Policy that forbids every network request (data
 * URIs for thumbnails and audio only), the chart library, the data as JSON, and the page's script,
 * which builds the DOM from the data with textContent (never innerHTML), so nothing from the data is
 * ever parsed as markup.
 */
export async function renderPage(page: { title: string; subtitle: string; data: unknown; script: string }): Promise<string> {
  const csp = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; media-src data:";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(page.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>${escapeHtml(page.title)}</h1><p class="subtitle">${escapeHtml(page.subtitle)}</p></header>
<main id="report"><noscript>This report draws its charts with JavaScript; the numbers are in metrics.json beside it.</noscript></main>
${PAGE_FOOTER} Self-contained: opens offline, loads nothing from the network.</footer>
<script type="application/json" id="report-data">${jsonForScript(page.data)}</script>
<script>${await chartLibrarySource()}</script>
<script>${COMMON_SCRIPT}
${page.script}</script>
</body>
</html>
`;
}

const STYLE = `
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --panel: #f9fafb; --accent: #2563eb; --bad: #dc2626; --good: #059669; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #fff; }
header, main, footer { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 28px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 10px; padding-top: 12px; border-top: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 8px; }
.subtitle, .note, footer { color: var(--muted); }
.note { font-size: 13.5px; max-width: 80ch; }
.warning { color: #92400e; background: #fffbeb; border: 1px solid #fde68a; padding: 8px 12px; border-radius: 6px; font-size: 14px; }
footer { font-size: 12.5px; padding: 32px 24px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px; margin: 18px 0; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.card .label { font-size: 12.5px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 26px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .detail { font-size: 12.5px; color: var(--muted); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 20px; }
.chart { position: relative; height: 300px; }
.chart.tall { height: 420px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 6px 0 12px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { font-weight: 600; color: var(--muted); font-size: 13px; }
td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
.kv td, .contenders td:last-child, .contenders th:last-child { text-align: left; vertical-align: top; }
.kv td:first-child { color: var(--muted); white-space: nowrap; }
.controls { display: flex; gap: 14px; align-items: center; flex-wrap: wrap; margin: 8px 0; font-size: 14px; }
button.tab, button.pair { font: inherit; font-size: 13.5px; border: 1px solid var(--line); background: #fff; border-radius: 999px; padding: 3px 12px; cursor: pointer; }
button.tab[aria-pressed="true"] { background: var(--accent); color: #fff; border-color: var(--accent); }
button.pair:hover, button.tab:hover { border-color: var(--accent); }
.confusion { display: grid; grid-template-columns: minmax(320px, 560px) 1fr; gap: 24px; align-items: start; }
@media (max-width: 900px) { .confusion { grid-template-columns: 1fr; } }
#examples h3 { margin-top: 0; }
.examples { list-style: none; padding: 0; margin: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; max-height: 620px; overflow: auto; }
.examples.text { grid-template-columns: 1fr; }
.example { border: 1px solid var(--line); border-radius: 8px; padding: 6px; background: #fff; font-size: 12.5px; }
.example img { width: 96px; height: 96px; object-fit: cover; border-radius: 4px; display: block; margin-bottom: 4px; background: var(--panel); }
.example audio { width: 100%; }
.example .source { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
.example .snippet { white-space: pre-wrap; margin: 2px 0 4px; font-size: 13.5px; }
.example .missing { color: var(--bad); }
.example img.explanation-map { width: auto; height: auto; max-width: 100%; object-fit: contain; }
.explanation .word { border-radius: 3px; }
.pairs { display: flex; flex-wrap: wrap; gap: 6px; margin: 6px 0; }
`;
