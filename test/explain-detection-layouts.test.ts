import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ort } from '../src/backbones/onnx-session.js';
import { Detector } from '../src/detector/detector.js';
import { DetectionExplainer, headFeatureMap } from '../src/explain/detection-grad-cam.js';
import { readTrainableModel } from '../src/autodiff/model.js';
import { copyGraph } from '../src/explain/attribution-model.js';
import { decodeModel, encodeModel } from '../src/backbones/tfjs/onnx-graph.js';
import { pruneToOutputs } from '../src/autodiff/graph-utils.js';
import { decodeDetr } from '../src/detector/detr-layout.js';
import { decodeYolo } from '../src/detector/yolo-layout.js';

const FIXTURES = new URL('./fixtures/detection/', import.meta.url).pathname;
/** The random-weight YOLO and DETR fixtures of test/detector-layouts.test.ts (tools/yolo-layout-fixture.py, tools/detr-layout-fixture.py). */
const CASES = [
  { name: 'Ultralytics YOLO', model: `${FIXTURES}yolo-tiny-random.onnx`, file: `${FIXTURES}yolo-tiny-random.onnx`, input: 'images', threshold: 0.25 },
  { name: 'DETR', model: `${FIXTURES}detr-tiny-random`, file: `${FIXTURES}detr-tiny-random/onnx/model.onnx`, input: 'pixel_values', threshold: 0.3 },
];

describe.each(CASES)('per-box Grad-CAM on $name detectors', ({ model, file, input, threshold }) => {
  it("gives one map per box on the image's pixel grid, different for boxes in different places, from the gradient of the box's score", async () => {
    const detector = await Detector.load(model, { threads: 1 });
    const explainer = await DetectionExplainer.forDetector(detector, 1);
    try {
      const image = `${FIXTURES}wide.png`;
      const bytes = new Uint8Array(await readFile(image));
      const boxes = await explainer.explain(bytes, { threshold, maxDetections: 20, source: image });
      const { detections, width, height } = await detector.detect(image, { threshold, maxDetections: 20 });
      // The same boxes `detect` gives.
      expect(boxes.map((b) => [b.label, b.score])).toEqual(detections.map((d) => [detector.classes.indexOf(d.label), d.score]));
      expect(boxes.length).toBeGreaterThanOrEqual(2);
      for (const box of boxes) expect([box.map.width, box.map.height, box.map.values.length]).toEqual([width, height, width * height]);
      const centre = (b: (typeof boxes)[number]) => [(b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2];
      const [a, b] = [boxes[0]!, boxes.find((other) => Math.hypot(centre(other)[0]! - centre(boxes[0]!)[0]!, centre(other)[1]! - centre(boxes[0]!)[1]!) > 4)!];
      expect(b, 'two boxes in different places').toBeDefined();
      const difference = a.map.values.reduce((sum, v, i) => sum + Math.abs(v - b.map.values[i]!), 0) / a.map.values.length;
      expect(difference).toBeGreaterThan(1e-3);
    } finally {
      await explainer.release();
      await detector.dispose();
    }
  });

  it("takes Grad-CAM on the feature map before the head, with the gradient finite differences of the box's score give", async () => {
    const detector = await Detector.load(model, { threads: 1 });
    const explainer = await DetectionExplainer.forDetector(detector, 1);
    try {
      const image = `${FIXTURES}square.png`;
      const [box] = await explainer.explain(new Uint8Array(await readFile(image)), { threshold, maxDetections: 1, source: image });
      const bytes = new Uint8Array(await readFile(file));
      const trainable = await readTrainableModel(bytes, file);
      const outputs = trainable.graph.outputs.map((o) => o.name);
      const tensor = headFeatureMap(trainable, outputs, input)!;
      expect(tensor).toBe(explainer.featureMap.tensor);
      // The feature map's values, from the graph as it is.
      const prepared = await detector.layout.prepare(new Uint8Array(await readFile(image)), image);
      const dims = input === 'images' ? [1, 3, 64, 64] : [1, 3, prepared.scaleY, prepared.scaleX];
      const whole = copyGraph(decodeModel(bytes, file));
      whole.outputs = [...outputs, tensor].map((name) => ({ name, shape: [], unknownShape: true }));
      const full = await ort.InferenceSession.create(encodeModel(whole, 'test', ''));
      const ran = await full.run({ [input]: new ort.Tensor('float32', prepared.data, dims) });
      const features = ran[tensor]!;
      const [, channels, height, width] = features.dims.map(Number) as [number, number, number, number];
      // The box's score as a function of the feature map: the head alone, fed the map.
      const head = copyGraph(decodeModel(bytes, file));
      head.nodes.splice(0, head.nodes.length, ...head.nodes.filter((node) => !node.outputs.includes(tensor)));
      head.inputs.push({ name: tensor, shape: [1, channels, height, width] } as never);
      head.outputs = outputs.map((name) => ({ name, shape: [], unknownShape: true }));
      pruneToOutputs(head);
      head.inputs.splice(0, head.inputs.length, ...head.inputs.filter((i) => i.name === tensor || head.nodes.some((n) => n.inputs.includes(i.name))));
      const cut = await ort.InferenceSession.create(encodeModel(head, 'test', ''));
      const feeds = (values: Float32Array) => ({ ...(head.inputs.some((i) => i.name === input) ? { [input]: new ort.Tensor('float32', prepared.data, dims) } : {}), [tensor]: new ort.Tensor('float32', values, features.dims as number[]) });
      const boxOf = (o: Record<string, ort.Tensor>) => {
        if (input === 'images') {
          const count = Number(o['output0']!.dims[2]);
          const [d] = decodeYolo(o['output0']!.data as Float32Array, detector.classes.length, count, prepared, threshold, 1);
          return { d, score: (v: Record<string, ort.Tensor>) => (v['output0']!.data as Float32Array)[(4 + d!.label) * count + d!.anchor]! };
        }
        const queries = Number(o['logits']!.dims[1]);
        const [d] = decodeDetr(o['logits']!.data as Float32Array, o['pred_boxes']!.data as Float32Array, queries, detector.classes.length, prepared, threshold, 1);
        const k = detector.classes.length + 1;
        return { d, score: (v: Record<string, ort.Tensor>) => {
          const row = Array.from((v['logits']!.data as Float32Array).subarray(d!.query * k, (d!.query + 1) * k), Number);
          const max = Math.max(...row);
          const sum = row.reduce((t, x) => t + Math.exp(x - max), 0);
          return Math.exp(row[d!.label]! - max) / sum;
        } };
      };
      const base = features.data as Float32Array;
      const { d, score } = boxOf(await cut.run(feeds(base)));
      expect(d!.score).toBeCloseTo(box!.score, 5);
      // Grad-CAM's channel weights are the mean gradient over each channel: a directional derivative along that channel.
      const plane = height * width;
      const epsilon = 1e-2;
      const weights: number[] = [];
      for (let c = 0; c < channels; c++) {
        const shifted = (sign: number) => Float32Array.from(base, (v, i) => (Math.floor(i / plane) === c ? v + sign * epsilon : v));
        const [up, down] = [score(await cut.run(feeds(shifted(1)))), score(await cut.run(feeds(shifted(-1))))];
        weights.push((up - down) / (2 * epsilon) / plane);
      }
      const cam = Array.from({ length: plane }, (_, i) => Math.max(0, weights.reduce((t, w, c) => t + w * base[c * plane + i]!, 0)));
      const scale = Math.max(...cam);
      expect(scale).toBeGreaterThan(0);
      expect([box!.raw.width, box!.raw.height]).toEqual([width, height]);
      const error = Math.max(...cam.map((v, i) => Math.abs(v - box!.raw.values[i]!)));
      expect(error / scale).toBeLessThan(1e-3);
      await full.release();
      await cut.release();
    } finally {
      await explainer.release();
      await detector.dispose();
    }
  });
});
