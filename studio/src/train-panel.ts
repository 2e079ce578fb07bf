/**
 * The Train screen: backbone (builtins, cached hub models, --backbone references), head,
 * augmentation and unfreezing; one Train button; live progress by server-sent events (feature
 * extraction, head epochs with loss and accuracy curves); cancel. The number shown at the end is the
 * held-out validation accuracy, never the training accuracy.
 */
import { html, nothing } from 'lit';
import { api, type EpochDetail, type ProjectDetail, type TrainEvent, type TrainStatus } from './api.js';
import { lineChart } from './curves.js';
import { changed } from './project.js';
import { LightElement, announce, errorText, percent } from './util.js';

class TrainPanel extends LightElement {
  static override properties = { project: { attribute: false }, status: { state: true }, progress: { state: true }, log: { state: true }, epochs: { state: true } };
  project!: ProjectDetail;
  status?: TrainStatus;
  progress = new Map<string, { done: number; total: number; unit: string }>();
  log: { level: string; message: string }[] = [];
  epochs = new Map<string, EpochDetail[]>();
  private source?: EventSource;

  override connectedCallback(): void {
    super.connectedCallback();
    this.status = this.project.training;
    if (this.status.state === 'running') this.follow();
  }

  override disconnectedCallback(): void {
    this.source?.close();
    super.disconnectedCallback();
  }

  private follow() {
    this.source?.close();
    this.progress = new Map();
    this.epochs = new Map();
    this.log = [];
    const source = api.trainEvents(this.project.id);
    this.source = source;
    const handle = (raw: MessageEvent) => this.onEvent(JSON.parse(raw.data) as TrainEvent);
    for (const type of ['state', 'progress', 'epoch', 'log']) source.addEventListener(type, handle as EventListener);
    source.onerror = () => {
      // The server ends the stream after the final state; anything else is retried by EventSource itself.
      if (this.status?.state !== 'running') source.close();
    };
  }

  private onEvent(event: TrainEvent) {
    if (event.type === 'state') {
      const was = this.status?.state;
      this.status = event.status;
      if (event.status.state !== 'running') {
        this.source?.close();
        if (was === 'running') {
          announce(
            event.status.state === 'done'
              ? `Training done: validation accuracy ${percent(event.status.metrics?.validation?.accuracy)}.`
              : `Training ${event.status.cancelled ? 'cancelled' : `failed: ${event.status.error}`}.`,
            event.status.state === 'done' || event.status.cancelled ? 'info' : 'error',
          );
          changed(this);
        }
      }
    } else if (event.type === 'progress') {
      this.progress = new Map(this.progress).set(event.label, event);
    } else if (event.type === 'epoch') {
      this.epochs = new Map(this.epochs).set(event.stage, [...(this.epochs.get(event.stage) ?? []), event.detail]);
    } else {
      this.log = [...this.log.slice(-200), event];
    }
  }

  private async train(event: SubmitEvent) {
    event.preventDefault();
    const data = new FormData(event.target as HTMLFormElement);
    const unfreeze = String(data.get('unfreeze') ?? '');
    const settings = {
      backbone: String(data.get('backbone')),
      head: String(data.get('head')),
      ...(this.project.task === 'text' ? {} : { augment: Number(data.get('augment') ?? 0) }),
      ...(unfreeze ? { unfreeze: unfreeze === 'all' ? 'all' : Number(unfreeze) } : {}),
    };
    try {
      this.status = await api.train(this.project.id, settings);
      announce('Training started.');
      this.follow();
    } catch (error) {
      announce(errorText(error), 'error');
    }
  }

  private async cancel() {
    try {
      await api.cancel(this.project.id);
    } catch (error) {
      announce(errorText(error), 'error');
    }
  }

  override render() {
    const p = this.project;
    const running = this.status?.state === 'running';
    const short = p.classes.filter((c) => c.examples < 2);
    const lastSettings = this.status?.settings;
    return html`
      <section class="panel" aria-labelledby="train-h">
        <h2 id="train-h">Train</h2>
        ${p.classes.length < 2 || short.length
          ? html`<p class="hint">Every class needs at least 2 examples (one is held out to measure accuracy), and you need two classes.
              ${short.length ? html`Add more to ${short.map((c) => c.name).join(', ')}.` : nothing}</p>`
          : nothing}
        <form class="settings" @submit=${this.train}>
          <label>Backbone
            <select name="backbone">
              ${p.backbones.map((b) => html`<option value=${b.id} ?selected=${lastSettings ? lastSettings.backbone === b.id : Boolean(b.default)} title=${b.description}>${b.id} (${b.source})</option>`)}
            </select>
          </label>
          <label>Head
            <select name="head">
              ${['linear', 'mlp', 'knn', 'centroid'].map((h) => html`<option value=${h} ?selected=${(lastSettings?.head ?? 'linear') === h}>${h}</option>`)}
            </select>
          </label>
          ${p.task === 'text'
            ? nothing
            : html`<label>Augmented views per example <input name="augment" type="number" min="0" max="16" .value=${String(lastSettings?.augment ?? 0)}></label>`}
          ${p.task === 'image'
            ? html`<label>Fine-tune backbone blocks (unfreeze)
                <select name="unfreeze">
                  <option value="">none (frozen backbone, fastest)</option>
                  <option value="1">last block</option>
                  <option value="2">last 2 blocks</option>
                  <option value="all">all blocks</option>
                </select>
              </label>`
            : nothing}
          <div class="row">
            <button class="primary" ?disabled=${running}>Train</button>
            <button type="button" ?disabled=${!running} @click=${this.cancel}>Cancel</button>
          </div>
        </form>
      </section>
      ${this.renderStatus()}
    `;
  }

  private renderStatus() {
    const status = this.status;
    if (!status || status.state === 'idle') return nothing;
    const validation = status.metrics?.validation;
    const stages = this.epochs.size ? [...this.epochs.entries()] : (status.history ?? []).map((h) => [h.stage, h.epochs] as const);
    const curves = stages.filter(([, epochs]) => epochs.length > 0).slice(-2);
    return html`<section class="panel" aria-labelledby="progress-h" data-state=${status.state}>
      <h2 id="progress-h">${status.state === 'running' ? 'Training…' : status.state === 'done' ? 'Last training' : status.cancelled ? 'Cancelled' : 'Training failed'}</h2>
      ${status.state === 'failed' && !status.cancelled ? html`<p class="error" role="alert">${status.error}</p>` : nothing}
      ${status.state === 'done' && validation
        ? html`<p class="headline" id="validation-accuracy">Validation accuracy <strong>${percent(validation.accuracy)}</strong>
            on ${validation.n} held-out examples${validation.intervals ? html` (95 % interval ${percent(validation.intervals.accuracy.low, 0)}–${percent(validation.intervals.accuracy.high, 0)})` : nothing}.
            <a href="#/p/${this.project.id}/results">See the results</a></p>`
        : nothing}
      ${[...this.progress.entries()].map(
        ([label, p]) => html`<div class="progress"><label>${label} <progress max=${p.total} .value=${p.done}></progress></label> <span>${p.done}/${p.total} ${p.unit}</span></div>`,
      )}
      <div class="charts">
        ${curves.map(([stage, epochs]) => html`
          ${lineChart(`${stage}: loss`, [
            { name: 'train loss', values: epochs.map((e) => e.trainLoss), className: 'train' },
            { name: 'validation loss', values: epochs.map((e) => e.valLoss), className: 'val' },
          ])}
          ${lineChart(`${stage}: accuracy`, [
            { name: 'train accuracy', values: epochs.map((e) => e.trainAccuracy), className: 'train' },
            { name: 'validation accuracy', values: epochs.map((e) => e.valAccuracy), className: 'val' },
          ], { min: 0, max: 1 })}`)}
      </div>
      ${this.log.length ? html`<details open><summary>Log</summary><ul class="log">${this.log.map((l) => html`<li class=${l.level}>${l.message}</li>`)}</ul></details>` : nothing}
    </section>`;
  }
}

customElements.define('hs-train', TrainPanel);
