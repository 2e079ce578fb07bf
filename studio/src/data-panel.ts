/**
 * The Data screen: classes as cards (add, rename, delete), examples by drag-and-drop of files or whole
 * folders, a file picker, the webcam (hold to record a burst) or the microphone (hold to record a
 * clip), pasted lines for text; browse, relabel and delete; import a folder of class folders or a CSV.
 */
import { html, nothing } from 'lit';
import { api, type ClassSummary, type Example, type ProjectDetail } from './api.js';
import { HeldMicrophone, grabFrame, openCamera, stopStream } from './media.js';
import { changed } from './project.js';
import { LightElement, announce, byClassFolder, droppedFiles, errorText, inBatches } from './util.js';

const UPLOAD_BATCH = 32;
const BURST_FPS = 8;

class DataPanel extends LightElement {
  static override properties = { project: { attribute: false }, cameraOn: { state: true }, recording: { state: true }, listening: { state: true }, captured: { state: true }, target: { state: true } };
  project!: ProjectDetail;
  cameraOn = false;
  recording = false;
  /** The microphone is open and delivering (it can take a moment after the button goes down). */
  listening = false;
  captured = 0;
  /** The class the webcam or microphone records into. */
  target = '';
  private stream?: MediaStream;
  private burst?: number;
  private frames: Promise<Blob>[] = [];
  private readonly mic = new HeldMicrophone();

  override disconnectedCallback(): void {
    stopStream(this.stream);
    this.mic.cancel();
    super.disconnectedCallback();
  }

  private async addClass(event: SubmitEvent) {
    event.preventDefault();
    const input = (event.target as HTMLFormElement).elements.namedItem('class') as HTMLInputElement;
    try {
      const { name } = await api.addClass(this.project.id, input.value);
      input.value = '';
      announce(`Class "${name}" added.`);
      this.target ||= name;
      changed(this);
    } catch (error) {
      announce(errorText(error), 'error');
    }
  }

  private async importFolder(files: { file: File; path: string }[]) {
    const groups = byClassFolder(files);
    if (groups.size === 0) {
      announce('Drop a folder holding one folder per class (an ImageFolder), or drop files onto a class card.', 'error');
      return;
    }
    let total = 0;
    try {
      for (const [name, members] of groups) {
        if (!this.project.classes.some((c) => c.name === name)) await api.addClass(this.project.id, name);
        await inBatches(members, UPLOAD_BATCH, async (batch) => {
          const { added } = await api.uploadFiles(this.project.id, name, batch.map((file) => ({ blob: file, name: file.name })));
          total += added.length;
        });
      }
      announce(`Imported ${total} examples into ${groups.size} classes.`);
    } catch (error) {
      announce(errorText(error), 'error');
    }
    changed(this);
  }

  private async importCsv(event: Event) {
    const input = event.target as HTMLInputElement;
    const file = input.files?.[0];
    if (!file) return;
    try {
      const { added, classes } = await api.importTexts(this.project.id, file);
      announce(`Imported ${added} texts in ${classes.length} classes.`);
    } catch (error) {
      announce(errorText(error), 'error');
    }
    input.value = '';
    changed(this);
  }

  private async onPageDrop(event: DragEvent) {
    event.preventDefault();
    if (!event.dataTransfer || this.project.task === 'text') return;
    await this.importFolder(await droppedFiles(event.dataTransfer));
  }

  // Webcam: hold to record a burst of frames into the chosen class.
  private async toggleCamera() {
    if (this.cameraOn) {
      stopStream(this.stream);
      this.cameraOn = false;
      return;
    }
    try {
      this.cameraOn = true;
      await this.updateComplete;
      this.stream = await openCamera(this.querySelector<HTMLVideoElement>('#webcam')!);
    } catch (error) {
      this.cameraOn = false;
      announce(`The camera could not be opened: ${errorText(error)}`, 'error');
    }
  }

  private startBurst() {
    if (this.recording || !this.cameraOn || !this.recordInto()) return;
    const video = this.querySelector<HTMLVideoElement>('#webcam')!;
    this.recording = true;
    this.captured = 0;
    this.frames = [];
    const grab = () => {
      this.frames.push(grabFrame(video));
      this.captured = this.frames.length;
    };
    grab();
    this.burst = window.setInterval(grab, 1000 / BURST_FPS);
  }

  private async stopBurst() {
    if (!this.recording) return;
    window.clearInterval(this.burst);
    this.recording = false;
    const name = this.recordInto()!;
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    try {
      const blobs = await Promise.all(this.frames);
      let added = 0;
      await inBatches(blobs.map((blob, i) => ({ blob, name: `webcam-${stamp}-${i + 1}.jpg` })), UPLOAD_BATCH, async (batch) => {
        added += (await api.uploadFiles(this.project.id, name, batch)).added.length;
      });
      announce(`${added} webcam frames added to "${name}".`);
    } catch (error) {
      announce(errorText(error), 'error');
    }
    changed(this);
  }

  // Microphone: hold to record one clip.
  private async startClip() {
    if (this.recording || !this.recordInto()) return;
    this.recording = true;
    const opened = await this.mic.press();
    this.listening = opened && this.recording;
    if (!opened) this.recording = false;
  }

  private async stopClip() {
    if (!this.recording) return;
    this.recording = false;
    this.listening = false;
    const name = this.recordInto()!;
    try {
      const wav = await this.mic.release();
      if (!wav) return;
      await api.uploadFiles(this.project.id, name, [{ blob: wav, name: `mic-${new Date().toISOString().replace(/[:.]/g, '-')}.wav` }]);
      announce(`Clip added to "${name}".`);
    } catch (error) {
      announce(errorText(error), 'error');
    }
    changed(this);
  }

  private recordInto(): string | undefined {
    const name = this.target && this.project.classes.some((c) => c.name === this.target) ? this.target : this.project.classes[0]?.name;
    if (!name) announce('Add a class first.', 'error');
    return name;
  }

  /** Pointer and keyboard (Space or Enter held) handlers for a hold-to-record button. */
  private hold(start: () => void, stop: () => void) {
    return {
      down: (event: PointerEvent) => {
        (event.target as HTMLElement).setPointerCapture?.(event.pointerId);
        start();
      },
      up: () => stop(),
      keydown: (event: KeyboardEvent) => {
        if ((event.key === ' ' || event.key === 'Enter') && !event.repeat) {
          event.preventDefault();
          start();
        }
      },
      keyup: (event: KeyboardEvent) => {
        if (event.key === ' ' || event.key === 'Enter') {
          event.preventDefault();
          stop();
        }
      },
    };
  }

  override render() {
    const p = this.project;
    const target = this.target && p.classes.some((c) => c.name === this.target) ? this.target : (p.classes[0]?.name ?? '');
    return html`
      <div class="drop-page" @dragover=${(e: DragEvent) => e.preventDefault()} @drop=${this.onPageDrop}>
        <section class="panel" aria-labelledby="classes-h">
          <h2 id="classes-h">Classes</h2>
          <form class="row" @submit=${this.addClass}>
            <label>New class <input name="class" required maxlength="80" autocomplete="off" placeholder="e.g. ants"></label>
            <button class="primary">Add class</button>
          </form>
          ${p.task === 'text'
            ? html`<p class="row"><label>Import a CSV (text and label columns) <input type="file" accept=".csv,.tsv,.jsonl,text/csv" @change=${this.importCsv}></label></p>`
            : html`<p class="row">
                <label>Import a folder of class folders
                  <input type="file" webkitdirectory multiple @change=${(e: Event) => this.importFolder([...((e.target as HTMLInputElement).files ?? [])].map((file) => ({ file, path: file.webkitRelativePath || file.name })))}></label>
                <span class="hint">or drop one anywhere on this screen; drop files onto a card to add them to that class.</span>
              </p>`}
        </section>
        ${p.task === 'text' ? nothing : this.renderCapture(target)}
        ${p.classes.length === 0 ? html`<p class="hint">Add at least two classes, then give each a few examples.</p>` : nothing}
        <ul class="classes">
          ${p.classes.map((c) => html`<li><hs-class-card .project=${p} .klass=${c}></hs-class-card></li>`)}
        </ul>
      </div>
    `;
  }

  private renderCapture(target: string) {
    const p = this.project;
    const select = html`<label>Record into
      <select @change=${(e: Event) => (this.target = (e.target as HTMLSelectElement).value)} .value=${target} ?disabled=${p.classes.length === 0}>
        ${p.classes.map((c) => html`<option value=${c.name} ?selected=${c.name === target}>${c.name}</option>`)}
      </select></label>`;
    if (p.task === 'image') {
      const hold = this.hold(() => this.startBurst(), () => void this.stopBurst());
      return html`<section class="panel" aria-labelledby="webcam-h">
        <h2 id="webcam-h">Webcam</h2>
        <div class="row">
          <button @click=${this.toggleCamera} aria-pressed=${this.cameraOn ? 'true' : 'false'}>${this.cameraOn ? 'Turn camera off' : 'Turn camera on'}</button>
          ${select}
          <button class="record ${this.recording ? 'on' : ''}" ?disabled=${!this.cameraOn || p.classes.length === 0}
            @pointerdown=${hold.down} @pointerup=${hold.up} @pointercancel=${hold.up} @keydown=${hold.keydown} @keyup=${hold.keyup}
            aria-describedby="burst-count">Hold to record</button>
          <span id="burst-count" aria-live="polite">${this.recording ? `recording… ${this.captured} frames` : this.captured ? `${this.captured} frames captured` : ''}</span>
        </div>
        ${this.cameraOn ? html`<video id="webcam" class="webcam" playsinline muted aria-label="Webcam preview"></video>` : nothing}
      </section>`;
    }
    const hold = this.hold(() => void this.startClip(), () => void this.stopClip());
    return html`<section class="panel" aria-labelledby="mic-h">
      <h2 id="mic-h">Microphone</h2>
      <div class="row">
        ${select}
        <button class="record ${this.recording ? 'on' : ''}" ?disabled=${p.classes.length === 0}
          @pointerdown=${hold.down} @pointerup=${hold.up} @pointercancel=${hold.up} @keydown=${hold.keydown} @keyup=${hold.keyup}>Hold to record</button>
        <span aria-live="polite">${this.listening ? 'recording…' : this.recording ? 'opening the microphone…' : ''}</span>
      </div>
    </section>`;
  }
}

/** One class: its name, count, rename/delete, drop zone and picker, and its examples. */
class ClassCard extends LightElement {
  static override properties = { project: { attribute: false }, klass: { attribute: false }, examples: { state: true }, open: { state: true }, renaming: { state: true }, over: { state: true } };
  project!: ProjectDetail;
  klass!: ClassSummary;
  examples?: Example[];
  open = false;
  renaming = false;
  over = false;

  override willUpdate(changedProps: Map<string, unknown>): void {
    if (changedProps.has('klass') && this.open) void this.loadExamples();
  }

  private async loadExamples() {
    try {
      this.examples = (await api.examples(this.project.id, this.klass.name)).examples;
    } catch (error) {
      announce(errorText(error), 'error');
    }
  }

  private async addFiles(files: File[]) {
    if (files.length === 0) return;
    let added = 0;
    let duplicates = 0;
    try {
      await inBatches(files, UPLOAD_BATCH, async (batch) => {
        const result = await api.uploadFiles(this.project.id, this.klass.name, batch.map((file) => ({ blob: file, name: file.name })));
        added += result.added.length;
        duplicates += result.duplicates.length;
      });
      announce(`${added} added to "${this.klass.name}"${duplicates ? ` (${duplicates} already there)` : ''}.`);
    } catch (error) {
      announce(errorText(error), 'error');
    }
    changed(this);
  }

  private async onDrop(event: DragEvent) {
    event.preventDefault();
    event.stopPropagation();
    this.over = false;
    if (!event.dataTransfer) return;
    await this.addFiles((await droppedFiles(event.dataTransfer)).map((f) => f.file).filter((f) => !f.name.startsWith('.')));
  }

  private async addLines(event: SubmitEvent) {
    event.preventDefault();
    const area = (event.target as HTMLFormElement).elements.namedItem('lines') as HTMLTextAreaElement;
    try {
      const { added, duplicates } = await api.addTexts(this.project.id, this.klass.name, area.value.split(/\r?\n/));
      area.value = '';
      announce(`${added} lines added to "${this.klass.name}"${duplicates ? ` (${duplicates} already there)` : ''}.`);
    } catch (error) {
      announce(errorText(error), 'error');
    }
    changed(this);
  }

  private async rename(event: SubmitEvent) {
    event.preventDefault();
    const input = (event.target as HTMLFormElement).elements.namedItem('name') as HTMLInputElement;
    try {
      const { name } = await api.renameClass(this.project.id, this.klass.name, input.value);
      this.renaming = false;
      announce(`Renamed to "${name}".`);
    } catch (error) {
      announce(errorText(error), 'error');
    }
    changed(this);
  }

  private async deleteClass() {
    if (!confirm(`Delete the class "${this.klass.name}" and its ${this.klass.examples} examples?`)) return;
    try {
      await api.deleteClass(this.project.id, this.klass.name);
      announce(`Class "${this.klass.name}" deleted.`);
    } catch (error) {
      announce(errorText(error), 'error');
    }
    changed(this);
  }

  private async move(example: Example, to: string) {
    try {
      await api.moveExample(this.project.id, this.klass.name, example.id, to);
      announce(`Moved to "${to}".`);
    } catch (error) {
      announce(errorText(error), 'error');
    }
    changed(this);
  }

  private async deleteExample(example: Example) {
    try {
      await api.deleteExample(this.project.id, this.klass.name, example.id);
      announce('Example deleted.');
    } catch (error) {
      announce(errorText(error), 'error');
    }
    changed(this);
  }

  override render() {
    const { klass: c, project: p } = this;
    const slug = `class-${p.classes.indexOf(c)}`;
    const accept = p.task === 'audio' ? '.wav,audio/wav' : 'image/*';
    return html`<article class="card class-card ${this.over ? 'over' : ''}" aria-labelledby="${slug}-h" data-class=${c.name}
        @dragover=${(e: DragEvent) => {
          e.preventDefault();
          this.over = true;
        }}
        @dragleave=${() => (this.over = false)} @drop=${this.onDrop}>
      <header class="card-head">
        ${this.renaming
          ? html`<form class="row" @submit=${this.rename}>
              <label>New name for ${c.name} <input name="name" .value=${c.name} required maxlength="80"></label>
              <button>Save</button><button type="button" @click=${() => (this.renaming = false)}>Cancel</button>
            </form>`
          : html`<h3 id="${slug}-h">${c.name}</h3>
              <span class="count">${c.examples} example${c.examples === 1 ? '' : 's'}</span>
              <button class="small" @click=${() => (this.renaming = true)} aria-label="Rename ${c.name}">Rename</button>
              <button class="small danger" @click=${this.deleteClass} aria-label="Delete class ${c.name}">Delete</button>`}
      </header>
      ${p.task === 'text'
        ? html`<form @submit=${this.addLines}>
            <label class="block">Paste lines for ${c.name} (one example per line)<textarea name="lines" rows="3"></textarea></label>
            <button>Add lines</button>
          </form>`
        : html`<label class="drop">Drop ${p.task === 'audio' ? 'WAV files' : 'images'} or a folder here, or choose files
            <input type="file" multiple accept=${accept} @change=${(e: Event) => {
              const input = e.target as HTMLInputElement;
              void this.addFiles([...(input.files ?? [])]).then(() => (input.value = ''));
            }}></label>`}
      <button class="link" aria-expanded=${this.open ? 'true' : 'false'} @click=${() => {
        this.open = !this.open;
        if (this.open) void this.loadExamples();
      }}>${this.open ? 'Hide examples' : 'Show examples'}</button>
      ${this.open ? this.renderExamples() : nothing}
    </article>`;
  }

  private renderExamples() {
    const { project: p, klass: c } = this;
    if (!this.examples) return html`<p>Loading…</p>`;
    if (this.examples.length === 0) return html`<p class="hint">No examples yet.</p>`;
    const others = p.classes.filter((o) => o.name !== c.name);
    return html`<ul class="examples ${p.task}">
      ${this.examples.map((e, i) => {
        const label = e.text ?? e.id;
        return html`<li class="example">
          ${p.task === 'image'
            ? html`<img src=${api.exampleUrl(p.id, c.name, e.id)} alt=${e.id} loading="lazy" width="96" height="96">`
            : p.task === 'audio'
              ? html`<audio controls preload="none" src=${api.exampleUrl(p.id, c.name, e.id)} aria-label=${e.id}></audio>`
              : html`<p class="snippet">${e.text}</p>`}
          <div class="row tight">
            ${others.length
              ? html`<label class="sr-only" for="move-${c.name}-${i}">Move ${label} to</label>
                  <select id="move-${c.name}-${i}" @change=${(ev: Event) => this.move(e, (ev.target as HTMLSelectElement).value)}>
                    <option value="">Move to…</option>
                    ${others.map((o) => html`<option value=${o.name}>${o.name}</option>`)}
                  </select>`
              : nothing}
            <button class="small danger" aria-label="Delete ${label}" @click=${() => this.deleteExample(e)}>×</button>
          </div>
        </li>`;
      })}
    </ul>`;
  }
}

customElements.define('hs-data', DataPanel);
customElements.define('hs-class-card', ClassCard);
