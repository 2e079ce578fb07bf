/**
 * Writes the attribution graph headstart builds for builtin:mobilenet-v2-1.0 under the pattern()
 * linear head of test/explain-builtin.test.ts, for tools/explain-builtin-reference.py to evaluate in
 * float64 (the converted TF.js graph exists only after headstart's conversion, so PyTorch has no twin
 * of it: the script runs this very ONNX graph node by node instead).
 *
 *     npx tsx tools/explain-dump-attribution.ts <out.onnx> [cacheDir]
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openImageBackbone } from '../src/backbones/resolve.js';
import { encodeModel } from '../src/backbones/tfjs/onnx-graph.js';
import { buildAttributionModel } from '../src/explain/attribution-model.js';
import { patternHead } from '../test/helpers/pattern-head.js';

const [out, cacheDir] = process.argv.slice(2);
if (!out) throw new Error('usage: npx tsx tools/explain-dump-attribution.ts <out.onnx> [cacheDir]');
const backbone = await openImageBackbone('builtin:mobilenet-v2-1.0', { cacheDir: cacheDir ?? (await mkdtemp(join(tmpdir(), 'headstart-dump-'))), threads: 2 });
const model = await buildAttributionModel(backbone, patternHead(backbone.reference.featureDim), 1);
await writeFile(out, encodeModel(model.model.graph, 'attribution', 'builtin:mobilenet-v2-1.0 + pattern head', { producer: 'headstart explain' }));
console.log(JSON.stringify({ input: model.input, logits: model.logits, classes: model.classes }));
await backbone.dispose();
