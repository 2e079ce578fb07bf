/**
 * The Results screen: the held-out numbers at a glance (accuracy with its interval, macro-F1,
 * per-class precision and recall, calibration), and below them the model's own report page —
 * written by src/report when the model was saved — with its curves, confusion matrix (click a cell
 * for its examples) and reliability diagram.
 */
import { html, nothing } from 'lit';
import { api, type Metrics, type ProjectDetail } from './api.js';
import { LightElement, percent } from './util.js';

class ResultsPanel extends LightElement {
  static override properties = { project: { attribute: false } };
  project!: ProjectDetail;

  override render() {
    const p = this.project;
    const validation = p.model?.validation;
    if (!p.model || !validation) return html`<section class="panel"><h2>Results</h2><p class="hint">No model yet: <a href="#/p/${p.id}/train">train one</a>.</p></section>`;
    const test = p.training.metrics?.test;
    return html`
      <section class="panel" aria-labelledby="results-h">
        <h2 id="results-h">Results</h2>
        <p class="hint">Measured on examples held out from training (${validation.n} in validation); the model never learnt from them.
          ${p.model.backbone} + ${p.model.head} head, trained ${p.model.createdAt.slice(0, 16).replace('T', ' ')}.</p>
        ${validation.n < 20
          ? html`<p class="warning" role="note">Only ${validation.n} held-out examples: one more mistake moves accuracy by ${(100 / validation.n).toFixed(0)} points. Add examples (a fifth of each class is held out) for a number you can trust.</p>`
          : nothing}
        ${this.summary('Validation', validation)}
        ${test ? this.summary('Test', test) : nothing}
        ${this.perClass(validation)}
      </section>
      <section class="panel" aria-labelledby="report-h">
        <h2 id="report-h">Full report</h2>
        <p class="hint">Confusion matrix (click a cell to see its examples), curves and calibration. <a href=${api.reportUrl(p.id)} target="_blank" rel="noopener">Open it in its own tab</a>.</p>
        <iframe class="report" src=${api.reportUrl(p.id)} title="Model report: confusion matrix, curves and calibration"></iframe>
      </section>
    `;
  }

  private summary(name: string, m: Metrics) {
    return html`<dl class="metrics" aria-label="${name} metrics">
      <div><dt>${name} accuracy</dt><dd data-metric="accuracy">${percent(m.accuracy)}</dd>
        ${m.intervals ? html`<dd class="detail">95 % interval ${percent(m.intervals.accuracy.low, 0)}–${percent(m.intervals.accuracy.high, 0)}</dd>` : nothing}</div>
      <div><dt>Macro F1</dt><dd>${m.macro.f1.toFixed(3)}</dd></div>
      <div><dt>Log loss</dt><dd>${m.logLoss.toFixed(3)}</dd></div>
      ${m.calibration
        ? html`<div><dt>Calibration error (ECE)</dt><dd>${m.calibration.ece.toFixed(3)}</dd>
            <dd class="detail">temperature ${m.calibration.temperature.toFixed(2)}${m.calibration.fittedOn === name.toLowerCase() ? ', fitted on this split (optimistic)' : ''}</dd></div>`
        : nothing}
      <div><dt>Examples</dt><dd>${m.n}</dd></div>
    </dl>`;
  }

  private perClass(m: Metrics) {
    return html`<table class="per-class">
      <caption>Per class (validation)</caption>
      <thead><tr><th scope="col">class</th><th scope="col">precision</th><th scope="col">recall</th><th scope="col">F1</th><th scope="col">examples</th><th scope="col">most often mistaken for</th></tr></thead>
      <tbody>
        ${m.perClass.map((c, i) => {
          const row = m.confusion[i] ?? [];
          let worst = -1;
          row.forEach((count, j) => {
            if (j !== i && count > 0 && (worst < 0 || count > row[worst]!)) worst = j;
          });
          return html`<tr><th scope="row">${c.label}</th><td>${percent(c.precision)}</td><td>${percent(c.recall)}</td><td>${c.f1.toFixed(3)}</td><td>${c.support}</td>
            <td>${worst >= 0 ? `${m.labels[worst]} (${row[worst]})` : '—'}</td></tr>`;
        })}
      </tbody>
    </table>`;
  }
}

customElements.define('hs-results', ResultsPanel);
