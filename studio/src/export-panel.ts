/**
 * The Export screen: the one-file ONNX (backbone + head + softmax, labels in its metadata) and the
 * model folder as a zip, with snippets that use them without headstart's training code: plain
 * onnxruntime-node, the browser through `headstart/web`, and curl against `headstart serve`.
 */
import { html, nothing } from 'lit';
import { api, type ProjectDetail } from './api.js';
import { LightElement, announce, errorText } from './util.js';

type Input = Record<string, unknown> & { kind: string };

class ExportPanel extends LightElement {
  static override properties = { project: { attribute: false }, info: { state: true } };
  project!: ProjectDetail;
  info?: { bytes: number; input: Input; output: Record<string, unknown> };

  override connectedCallback(): void {
    super.connectedCallback();
    if (this.project.model) void this.load();
  }

  private async load() {
    try {
      const { bytes, metadata } = await api.exportInfo(this.project.id);
      this.info = { bytes, input: metadata.input as Input, output: metadata.output };
    } catch (error) {
      announce(`The export failed: ${errorText(error)}`, 'error');
    }
  }

  override render() {
    const p = this.project;
    if (!p.model) return html`<section class="panel"><h2>Export</h2><p class="hint">No model yet: <a href="#/p/${p.id}/train">train one</a>.</p></section>`;
    const folder = `${p.id}-model`;
    return html`
      <section class="panel" aria-labelledby="export-h">
        <h2 id="export-h">Export</h2>
        <p class="row">
          <a class="button primary" href=${api.onnxUrl(p.id)} download="${p.id}.onnx">Download ${p.id}.onnx</a>
          <a class="button" href=${api.zipUrl(p.id)} download="${folder}.zip">Download the model folder (zip)</a>
        </p>
        <p class="hint">
          ${this.info
            ? html`One ONNX file of ${(this.info.bytes / 1e6).toFixed(1)} MB: input <code>${describe(this.info.input)}</code>, output <code>${String(this.info.output.name)}</code> (probabilities of ${p.model.labels.join(', ')}). It runs in onnxruntime anywhere, with no headstart code.`
            : 'Preparing the export…'}
          The model folder is what <code>headstart predict</code>, <code>serve</code> and <code>export</code> read.
        </p>
      </section>
      ${this.info ? this.snippets(this.info.input, folder) : nothing}
    `;
  }

  private snippets(input: Input, folder: string) {
    const p = this.project;
    const file = `${p.id}.onnx`;
    return html`
      <section class="panel" aria-labelledby="node-h"><h2 id="node-h">Node (onnxruntime-node)</h2><pre><code>${nodeSnippet(input, file)}</code></pre></section>
      <section class="panel" aria-labelledby="browser-h"><h2 id="browser-h">Browser (headstart/web)</h2><pre><code>${browserSnippet(p.task, file)}</code></pre></section>
      <section class="panel" aria-labelledby="curl-h"><h2 id="curl-h">curl to headstart serve</h2><pre><code>${curlSnippet(p.task, folder)}</code></pre></section>
    `;
  }
}

function describe(input: Input): string {
  switch (input.kind) {
    case 'image':
      return `${input.name}: uint8 [batch, ${input.height}, ${input.width}, 3] RGB`;
    case 'audio':
      return `${input.name}: float32 [1, samples], mono ${input.sampleRate} Hz`;
    case 'tfidf':
      return 'name' in input ? `${input.name}: float32 [batch, ${input.dim}] TF-IDF rows` : `${input.indicesName} int64 [nnz, 2], ${input.valuesName} float32 [nnz], ${input.shapeName} int64 [2]: TF-IDF rows (${input.dim} terms) as a COO sparse tensor`;
    default:
      return `${input.idsName}, ${input.maskName}: int64 [batch, tokens]`;
  }
}

function nodeSnippet(input: Input, file: string): string {
  if (input.kind === 'image') {
    const { width, height, shortestEdge } = input as unknown as { width: number; height: number; shortestEdge?: number };
    const resize =
      input.resize === 'shortest-edge-crop'
        ? `const meta = await sharp('photo.jpg').metadata();
const scale = ${shortestEdge} / Math.min(meta.width, meta.height);
const [w, h] = [Math.max(${width}, Math.round(meta.width * scale)), Math.max(${height}, Math.round(meta.height * scale))];
const rgb = await sharp('photo.jpg').resize(w, h, { fit: 'fill', kernel: 'linear' })
  .extract({ left: (w - ${width}) >> 1, top: (h - ${height}) >> 1, width: ${width}, height: ${height} })
  .flatten({ background: '#ffffff' }).removeAlpha().raw().toBuffer();`
        : `const rgb = await sharp('photo.jpg').resize(${width}, ${height}, { fit: 'fill', kernel: 'linear' })
  .flatten({ background: '#ffffff' }).removeAlpha().raw().toBuffer();`;
    return `import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { parseExportMetadata, readOnnxMetadata } from 'headstart/web';
import { readFileSync } from 'node:fs';

const bytes = readFileSync('${file}');
const { labels } = parseExportMetadata(readOnnxMetadata(bytes));
${resize}
const session = await ort.InferenceSession.create(bytes);
const { probabilities } = await session.run({ ${input.name}: new ort.Tensor('uint8', rgb, [1, ${height}, ${width}, 3]) });
console.log(labels.map((label, i) => [label, probabilities.data[i]]));`;
  }
  if (input.kind === 'audio') {
    return `import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
// samples: Float32Array, mono, ${input.sampleRate} Hz, in [-1, 1] (decode and resample your WAV first)
const session = await ort.InferenceSession.create(readFileSync('${file}'));
const { probabilities } = await session.run({ ${input.name}: new ort.Tensor('float32', samples, [1, samples.length]) });`;
  }
  return `import * as ort from 'onnxruntime-node';
import { parseExportMetadata, readOnnxMetadata, textFeaturizer } from 'headstart/web';
import { readFileSync } from 'node:fs';

const bytes = readFileSync('${file}');
const metadata = parseExportMetadata(readOnnxMetadata(bytes));
const feeds = textFeaturizer(metadata).feeds(['first text', 'second text']);
const session = await ort.InferenceSession.create(bytes);
const inputs = Object.fromEntries(Object.entries(feeds).map(([name, t]) => [name, new ort.Tensor(t.type, t.data, t.dims)]));
const { probabilities } = await session.run(inputs);   // [2, ${'classes'}], in the order of metadata.labels`;
}

function browserSnippet(task: string, file: string): string {
  const input = task === 'image' ? "document.querySelector('img')" : task === 'audio' ? "await (await fetch('/clip.wav')).blob()" : "'a text to classify'";
  return `import { loadClassifier } from 'headstart/web';

const model = await loadClassifier('/${file}');
const [best] = await model.classify(${input});   // { label, probability }`;
}

function curlSnippet(task: string, folder: string): string {
  const body =
    task === 'image'
      ? `-H 'content-type: image/jpeg' --data-binary @photo.jpg`
      : task === 'audio'
        ? `-H 'content-type: audio/wav' --data-binary @clip.wav`
        : `-H 'content-type: application/json' -d '{"text": "a text to classify"}'`;
  return `unzip ${folder}.zip
npx headstart serve ${folder} --port 8080
curl -s ${body} http://127.0.0.1:8080/v1/models/${folder}/predict`;
}

customElements.define('hs-export', ExportPanel);
