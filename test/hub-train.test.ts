import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageBackbone } from '../src/backbones/image-backbone.js';
import { readHfImageModel } from '../src/backbones/hf-folder.js';
import { runCli } from './helpers/cli.js';
import { startHubServer, type HubServer } from './helpers/hub-server.js';
import { HUB_FIXTURES, MOBILENET, SHARED_MODELS, hubTempDir } from './helpers/hub-fixtures.js';
import { makeColourFolder, makeImage } from './helpers/images.js';

const { onnx } = onnxProto;

describe('training on a backbone pulled from a hub that speaks the Hugging Face API', () => {
  let server: HubServer;
  let work: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    server = await startHubServer(HUB_FIXTURES);
    work = await hubTempDir('headstart-hub-train-');
    env = { HF_ENDPOINT: server.url, HF_HUB_CACHE: join(work, 'hf-cache'), HF_HUB_OFFLINE: '', HF_TOKEN: '' };
  });
  afterAll(() => server?.close());

  it('pulls on demand, trains, pins the commit, and predicts later offline with no requests', async () => {
    const data = await makeColourFolder(join(work, 'data'), 6);
    const model = join(work, 'model');
    const train = await runCli(['train', data, '--backbone', `hf:${MOBILENET}`, '--out', model, '--cache-dir', join(work, 'cache'), '--quiet'], env);
    expect(train.code, train.stderr).toBe(0);
    const manifest = JSON.parse(await readFile(join(model, 'manifest.json'), 'utf8'));
    expect(manifest.backbone.id).toBe(`hf:${MOBILENET}@${server.commitOf(MOBILENET)}`);
    expect(manifest.backbone.featureDim).toBe(1280);
    expect(server.requests.some((r) => r.path.includes('/resolve/'))).toBe(true);

    server.reset();
    const image = join(data, 'red', 'red-2.png');
    const predict = await runCli(['predict', model, image, '--json', '--cache-dir', join(work, 'cache'), '--quiet'], { ...env, HF_HUB_OFFLINE: '1' });
    expect(predict.code, predict.stderr).toBe(0);
    expect(JSON.parse(predict.stdout)[0].predictions).toHaveLength(2);
    expect(server.requests).toHaveLength(0);
  });

  it('fails offline with an error naming the repository that is not cached', async () => {
    const data = await makeColourFolder(join(work, 'data2'), 3);
    const result = await runCli(['train', data, '--backbone', 'hf:test-org/resnet-18-random', '--offline', '--cache-dir', join(work, 'cache'), '--quiet'], env);
    expect(result.code).toBe(5);
    expect(result.stderr).toMatch(/test-org\/resnet-18-random/);
    expect(result.stderr).toMatch(/offline/i);
  });
});

describe('classifier exports (only a logits output)', () => {
  it('take their features from the classification layer input, equal to the pooled output', async () => {
    const dir = await hubTempDir('headstart-classifier-export-');
    const source = join(SHARED_MODELS, 'mobilenet-v2-random');
    const model = onnx.ModelProto.decode(await readFile(join(source, 'onnx/model.onnx')));
    const graph = model.graph!;
    // Make it look like MobileNetV2ForImageClassification: pooled features → Gemm → logits only.
    const weight = onnx.TensorProto.create({ name: 'classifier.weight', dims: [3, 1280], dataType: 1, floatData: Array.from({ length: 3 * 1280 }, (_, i) => Math.sin(i) / 40) });
    const bias = onnx.TensorProto.create({ name: 'classifier.bias', dims: [3], dataType: 1, floatData: [0.1, -0.2, 0.3] });
    graph.initializer!.push(weight, bias);
    graph.node!.push(onnx.NodeProto.create({ opType: 'Gemm', input: ['pooler_output', 'classifier.weight', 'classifier.bias'], output: ['logits'], attribute: [onnx.AttributeProto.create({ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 })] }));
    graph.output = [onnx.ValueInfoProto.create({ name: 'logits', type: { tensorType: { elemType: 1 } } })];
    await mkdir(join(dir, 'onnx'), { recursive: true });
    await writeFile(join(dir, 'onnx/model.onnx'), onnx.ModelProto.encode(model).finish());
    await copyFile(join(source, 'config.json'), join(dir, 'config.json'));
    await copyFile(join(source, 'preprocessor_config.json'), join(dir, 'preprocessor_config.json'));

    const exported = await ImageBackbone.open(await readHfImageModel(dir, 'classifier-export'));
    const original = await ImageBackbone.open(await readHfImageModel(source, 'original'));
    try {
      expect(exported.reference.featureDim).toBe(1280);
      expect(exported.reference.featureOutput).toBe('pooler_output');
      const pixels = await exported.prepare(await makeImage(50, 40, { r: 200, g: 30, b: 90 }, 'jpeg'));
      const a = await exported.forward([pixels]);
      const b = await original.forward([pixels]);
      expect(Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!)))).toBeLessThan(1e-5);
    } finally {
      await exported.dispose();
      await original.dispose();
    }
  });
});
