/** A small SVG line chart for the live loss and accuracy curves (hand-drawn: a chart library would triple the bundle). */
import { html, svg } from 'lit';

export interface Series {
  name: string;
  values: (number | undefined)[];
  className: string;
}

export function lineChart(title: string, series: Series[], options: { min?: number; max?: number } = {}) {
  const width = 320;
  const height = 160;
  const pad = 28;
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== undefined && Number.isFinite(v)));
  const count = Math.max(...series.map((s) => s.values.length), 2);
  const low = options.min ?? Math.min(...all, 0);
  const high = options.max ?? Math.max(...all, 1e-6);
  const x = (i: number) => pad + (i / (count - 1)) * (width - pad - 8);
  const y = (v: number) => height - pad - ((v - low) / (high - low || 1)) * (height - pad - 8);
  const last = series.map((s) => [...s.values].reverse().find((v) => v !== undefined));
  const summary = series.map((s, i) => `${s.name} ${last[i] === undefined ? 'n/a' : last[i]!.toFixed(3)}`).join(', ');
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <svg viewBox="0 0 ${width} ${height}" role="img" aria-label="${title}: ${all.length ? summary : 'no epochs yet'}">
      <line x1=${pad} y1=${height - pad} x2=${width - 8} y2=${height - pad} class="axis"></line>
      <line x1=${pad} y1="8" x2=${pad} y2=${height - pad} class="axis"></line>
      <text x="2" y="14" class="tick">${high.toFixed(2)}</text>
      <text x="2" y=${height - pad} class="tick">${low.toFixed(2)}</text>
      <text x=${width - 8} y=${height - 8} class="tick" text-anchor="end">epoch ${count}</text>
      ${series.map((s) => {
        const points = s.values.map((v, i) => (v === undefined || !Number.isFinite(v) ? undefined : `${x(i).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean);
        return svg`<polyline class=${s.className} fill="none" points=${points.join(' ')}></polyline>`;
      })}
    </svg>
    <ul class="legend">${series.map((s, i) => html`<li><span class="swatch ${s.className}"></span>${s.name}: ${last[i] === undefined ? 'n/a' : last[i]!.toFixed(3)}</li>`)}</ul>
  </figure>`;
}
