import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { iou } from '../src/detector/boxes.js';
import { Detector } from '../src/detector/detector.js';
import { DetectionExplainer } from '../src/explain/detection-grad-cam.js';
import { detectionExplanationJson } from '../src/explain/output.js';
import { createServer, type HeadstartServer } from '../src/serve/server.js';
import { tempDir } from './helpers/images.js';

const DOG = readFileSync('/usr/share/darknet/data/dog.jpg');
const YOLO = new URL('./fixtures/detection/yolo-tiny-random.onnx', import.meta.url).pathname;
let dir: string;
let server: HeadstartServer;
let centernet: Detector;

beforeAll(async () => {
  dir = await tempDir('headstart-detect-serve-');
  centernet = await Detector.load('builtin:centernet', { cacheDir: join(dir, 'cache') });
  const yolo = await Detector.load(YOLO, { threads: 1 });
  server = await createServer([], { logger: false, detectors: [{ name: 'centernet', detector: centernet }, { name: 'yolo', detector: yolo }], limits: { maxBodyBytes: 400_000, maxPixels: 1_000_000 } });
}, 60_000);
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('detectors over HTTP', () => {
  it('answers image bytes with boxes in the image\'s pixels, as the library does', async () => {
    const response = await server.app.inject({ method: 'POST', url: '/v1/detectors/centernet/detect?threshold=0.3', headers: { 'content-type': 'image/jpeg' }, payload: DOG });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({ model: 'centernet', width: 768, height: 576 });
    const dog = body.detections.find((d: any) => d.label === 'dog');
    expect(iou(dog.box, [128, 224, 314, 537])).toBeGreaterThan(0.5);
    expect(body.detections.every((d: any) => d.score >= 0.3)).toBe(true);
    const listed = (await server.app.inject({ method: 'GET', url: '/v1/detectors' })).json();
    expect(listed.detectors.map((d: any) => [d.name, d.layout])).toEqual([['centernet', 'centernet'], ['yolo', 'ultralytics-yolo']]);
  }, 60_000);

  it('keeps the limits: body size, pixels, content type, unknown detector, bad parameters', async () => {
    const post = (url: string, payload: Buffer, type = 'image/png') => server.app.inject({ method: 'POST', url, headers: { 'content-type': type }, payload });
    expect((await post('/v1/detectors/centernet/detect', Buffer.alloc(500_000))).statusCode).toBe(413);
    expect((await post('/v1/detectors/centernet/detect', DOG, 'text/plain')).statusCode).toBe(415);
    expect((await post('/v1/detectors/nope/detect', DOG)).statusCode).toBe(404);
    expect((await post('/v1/detectors/yolo/detect?threshold=2', DOG)).json().error.code).toBe('bad_threshold');
    const { pngClaimingSize } = await import('./helpers/images.js');
    const bomb = await post('/v1/detectors/yolo/detect', await pngClaimingSize(5000, 5000));
    expect(bomb.statusCode).toBe(413);
  });

  it('POST /v1/models/<name>/explain on a detector: per-box Grad-CAM as the library computes it, under the same limits', async () => {
    const post = (url: string, payload: Buffer, type = 'image/jpeg') => server.app.inject({ method: 'POST', url, headers: { 'content-type': type }, payload });
    const response = await post('/v1/models/centernet/explain?threshold=0.3&max_detections=3', DOG);
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json() as { model: string; explanations: ReturnType<typeof detectionExplanationJson>[] };
    const explainer = await DetectionExplainer.forDetector(centernet);
    const direct = detectionExplanationJson('0', await explainer.explain(DOG, { threshold: 0.3, maxDetections: 3 }), centernet.classes);
    await explainer.release();
    expect(body.model).toBe('centernet');
    expect(body.explanations).toHaveLength(1);
    const [served] = body.explanations;
    // The detections are detect's own, each with the library's map for that box.
    const detected = (await post('/v1/detectors/centernet/detect?threshold=0.3&max_detections=3', DOG)).json();
    expect(served!.detections.map((d) => d.label)).toEqual(detected.detections.map((d: any) => d.label));
    expect(served!.detections.length).toBeGreaterThan(0);
    expect(served!.detections.map((d) => d.label)).toEqual(direct.detections.map((d) => d.label));
    served!.detections.forEach((d, k) => {
      const reference = direct.detections[k]!;
      expect(d.score).toBeCloseTo(reference.score, 5);
      expect(d.box).toEqual(reference.box);
      expect(d.peak).toEqual(reference.peak);
      expect([d.map.width, d.map.height]).toEqual([reference.map.width, reference.map.height]);
      const worst = Math.max(...d.map.values.map((v, i) => Math.abs(v - reference.map.values[i]!)));
      expect(worst).toBeLessThan(1e-3);
    });
    // The detectors' namespace answers the same.
    const aliased = await post('/v1/detectors/centernet/explain?threshold=0.3&max_detections=1', DOG);
    expect(aliased.json().explanations[0].detections.map((d: any) => d.peak)).toEqual(served!.detections.slice(0, 1).map((d) => d.peak));

    // The detect route's limits and parameters.
    expect((await post('/v1/models/centernet/explain', Buffer.alloc(500_000))).statusCode).toBe(413);
    expect((await post('/v1/models/centernet/explain', DOG, 'text/plain')).statusCode).toBe(415);
    expect((await post('/v1/models/nope/explain', DOG)).statusCode).toBe(404);
    expect((await post('/v1/detectors/nope/explain', DOG)).statusCode).toBe(404);
    const { pngClaimingSize } = await import('./helpers/images.js');
    expect((await post('/v1/models/centernet/explain', await pngClaimingSize(5000, 5000), 'image/png')).statusCode).toBe(413);
    const refused = async (url: string, code: string, message: RegExp) => {
      const answer = await post(url, DOG);
      expect([answer.statusCode, answer.json().error.code]).toEqual([400, code]);
      expect(answer.json().error.message).toMatch(message);
    };
    await refused('/v1/models/centernet/explain?threshold=2', 'bad_threshold', /threshold must be a number from 0 to 1/);
    await refused('/v1/models/centernet/explain?max_detections=101', 'bad_max_detections', /from 1 to 100/);
    await refused('/v1/models/centernet/explain?method=saliency', 'bad_explain_option', /method=gradcam/);
    await refused('/v1/models/centernet/explain?steps=8', 'bad_explain_option', /steps apply to classifiers/);
    // Per-box Grad-CAM covers Ultralytics YOLO exports too (test/explain-detection-layouts.test.ts checks the maps).
    const yoloExplained = await post('/v1/models/yolo/explain', DOG);
    expect(yoloExplained.statusCode).toBe(200);
    const [explainBroken, detectBroken] = await Promise.all(['explain', 'detect'].map((route) => post(`/v1/detectors/centernet/${route}`, Buffer.from('not a jpeg'))));
    expect(explainBroken!.statusCode).toBe(400);
    expect(explainBroken!.json()).toEqual(detectBroken!.json());
  }, 300_000); // ~60 s on a quiet machine: two explanation graphs are built (the server's and the library's)
});
