/**
 * The Test screen: the trained model on new inputs, with a probability bar per class — the live
 * webcam (a frame every half second), the microphone (hold to record), a text box, or dropped files.
 */
import { html, nothing } from 'lit';
import { api, type Prediction, type ProjectDetail } from './api.js';
import { HeldMicrophone, grabFrame, openCamera, stopStream } from './media.js';
import { LightElement, announce, droppedFiles, errorText, percent } from './util.js';

class TestPanel extends LightElement {
  static override properties = { project: { attribute: false }, results: { state: true }, live: { state: true }, recording: { state: true } };
  project!: ProjectDetail;
  results: { name: string; predictions: Prediction[]; preview?: string }[] = [];
  live = false;
  recording = false;
  private stream?: MediaStream;
  private timer?: number;
  private typing?: number;
  private readonly mic = new HeldMicrophone();

  override disconnectedCallback(): void {
    this.stopLive();
    this.mic.cancel();
    for (const r of this.results) if (r.preview) URL.revokeObjectURL(r.preview);
    super.disconnectedCallback();
  }

  private show(name: string, predictions: Prediction[], blob?: Blob) {
    const preview = blob && this.project.task === 'image' ? URL.createObjectURL(blob) : undefined;
    const [best] = predictions;
    this.results = [{ name, predictions, preview }, ...this.results.slice(0, 11)];
    if (best) announce(`${name}: ${best.label} (${percent(best.probability)}).`);
  }

  private async predictFiles(files: File[]) {
    for (const file of files) {
      try {
        this.show(file.name, await api.predictBytes(this.project.id, file), file);
      } catch (error) {
        announce(`${file.name}: ${errorText(error)}`, 'error');
      }
    }
  }

  private async toggleLive() {
    if (this.live) return this.stopLive();
    try {
      this.live = true;
      await this.updateComplete;
      const video = this.querySelector<HTMLVideoElement>('#test-webcam')!;
      this.stream = await openCamera(video);
      let busy = false;
      this.timer = window.setInterval(async () => {
        if (busy) return;
        busy = true;
        try {
          const frame = await grabFrame(video);
          const predictions = await api.predictBytes(this.project.id, frame);
          this.results = [{ name: 'webcam', predictions }, ...this.results.filter((r) => r.name !== 'webcam')];
        } catch (error) {
          announce(errorText(error), 'error');
          this.stopLive();
        } finally {
          busy = false;
        }
      }, 500);
    } catch (error) {
      this.live = false;
      announce(`The camera could not be opened: ${errorText(error)}`, 'error');
    }
  }

  private stopLive() {
    window.clearInterval(this.timer);
    stopStream(this.stream);
    this.live = false;
  }

  private onText(event: Event) {
    const text = (event.target as HTMLTextAreaElement).value;
    window.clearTimeout(this.typing);
    if (!text.trim()) return;
    this.typing = window.setTimeout(async () => {
      try {
        const predictions = await api.predictText(this.project.id, text);
        this.results = [{ name: 'text', predictions }];
      } catch (error) {
        announce(errorText(error), 'error');
      }
    }, 250);
  }

  private async startClip() {
    if (this.recording) return;
    this.recording = true;
    if (!(await this.mic.press())) this.recording = false;
  }

  private async stopClip() {
    if (!this.recording) return;
    this.recording = false;
    try {
      const wav = await this.mic.release();
      if (wav) this.show('recording', await api.predictBytes(this.project.id, wav));
    } catch (error) {
      announce(errorText(error), 'error');
    }
  }

  override render() {
    const p = this.project;
    if (!p.model) return html`<section class="panel"><h2>Test</h2><p class="hint">No model yet: <a href="#/p/${p.id}/train">train one</a>.</p></section>`;
    return html`
      <section class="panel" aria-labelledby="test-h"
        @dragover=${(e: DragEvent) => e.preventDefault()}
        @drop=${async (e: DragEvent) => {
          e.preventDefault();
          if (e.dataTransfer) await this.predictFiles((await droppedFiles(e.dataTransfer)).map((f) => f.file));
        }}>
        <h2 id="test-h">Test</h2>
        ${p.task === 'text'
          ? html`<label class="block">Type or paste a text<textarea id="test-text" rows="3" @input=${this.onText}></textarea></label>`
          : html`<div class="row">
              ${p.task === 'image'
                ? html`<button @click=${this.toggleLive} aria-pressed=${this.live ? 'true' : 'false'}>${this.live ? 'Stop the live webcam' : 'Live webcam'}</button>`
                : html`<button class="record ${this.recording ? 'on' : ''}"
                    @pointerdown=${() => this.startClip()} @pointerup=${() => this.stopClip()} @pointercancel=${() => this.stopClip()}
                    @keydown=${(e: KeyboardEvent) => (e.key === ' ' || e.key === 'Enter') && !e.repeat && (e.preventDefault(), this.startClip())}
                    @keyup=${(e: KeyboardEvent) => (e.key === ' ' || e.key === 'Enter') && (e.preventDefault(), this.stopClip())}>Hold to record</button>`}
              <label class="drop">Drop files here, or choose files to classify
                <input type="file" multiple accept=${p.task === 'audio' ? '.wav,audio/wav' : 'image/*'} @change=${(e: Event) => this.predictFiles([...((e.target as HTMLInputElement).files ?? [])])}>
              </label>
            </div>
            ${this.live ? html`<video id="test-webcam" class="webcam" playsinline muted aria-label="Live webcam"></video>` : nothing}`}
        <ul class="results" aria-label="Predictions">
          ${this.results.map(
            (r) => html`<li class="result" data-name=${r.name}>
              ${r.preview ? html`<img src=${r.preview} alt=${r.name} width="96" height="96">` : nothing}
              <div class="bars">
                <p class="result-name">${r.name}: <strong>${r.predictions[0]?.label}</strong></p>
                ${r.predictions.map(
                  (pr) => html`<div class="bar-row"><span class="bar-label">${pr.label}</span>
                    <meter min="0" max="1" .value=${pr.probability} aria-label="${pr.label} probability"></meter>
                    <span class="bar-value">${percent(pr.probability)}</span></div>`,
                )}
              </div>
            </li>`,
          )}
        </ul>
      </section>
    `;
  }
}

customElements.define('hs-test', TestPanel);
