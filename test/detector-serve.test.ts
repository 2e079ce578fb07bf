import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { iou } from '../src/detector/boxes.js';
import { Detector } from '../src/detector/detector.js';
import { createServer, type HeadstartServer } from '../src/serve/server.js';
import { tempDir } from './helpers/images.js';

const DOG = readFileSync('/usr/share/darknet/data/dog.jpg');
const YOLO = new URL('./fixtures/detection/yolo-tiny-random.onnx', import.meta.url).pathname;
let dir: string;
let server: HeadstartServer;

beforeAll(async () => {
  dir = await tempDir('headstart-detect-serve-');
  const centernet = await Detector.load('builtin:centernet', { cacheDir: join(dir, 'cache') });
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
});
