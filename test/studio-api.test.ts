/**
 * The studio's REST API through Fastify's inject (no socket): projects as dataset folders that
 * `headstart train` reads, uploads checked and sanitised, writes from other origins refused,
 * training to a model whose numbers, predictions and export match the library's, and a restart
 * that finds everything again.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unzipSync } from 'fflate';
import { Classifier } from '../src/classifier/classifier.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { readTextDataset } from '../src/data/text-dataset.js';
import { createStudioServer, type StudioServer } from '../src/studio/server.js';
import type { TrainStatus } from '../src/studio/training.js';
import { makeImage, tempDir } from './helpers/images.js';

const TEXTS: Record<string, string[]> = {
  weather: ['rain tomorrow in the north', 'sunny skies and a warm breeze', 'storm warning for the coast', 'snow expected overnight', 'cloudy with light showers', 'heat wave continues this week'],
  sport: ['the striker scored twice', 'a late goal won the match', 'the team lost the final', 'record time in the marathon', 'the keeper saved a penalty', 'coach praised the defence'],
};

/** A multipart body with the given files in field `files`. */
function multipart(files: { name: string; bytes: Uint8Array; type?: string }[], field = 'files'): { payload: Buffer; headers: Record<string, string> } {
  const boundary = '----studio-test-boundary';
  const parts: Buffer[] = [];
  for (const file of files) {
    parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${field}"; filename="${file.name}"\r\ncontent-type: ${file.type ?? 'application/octet-stream'}\r\n\r\n`));
    parts.push(Buffer.from(file.bytes), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(parts), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

async function waitForTraining(studio: StudioServer, id: string): Promise<TrainStatus> {
  for (let i = 0; i < 600; i++) {
    const status = (await studio.app.inject({ method: 'GET', url: `/api/projects/${id}/train` })).json() as TrainStatus;
    if (status.state !== 'running') return status;
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error('training did not finish within 60 s');
}

describe('studio API', () => {
  let dir: string;
  let studio: StudioServer;
  const inject = (options: InjectOptions) => studio.app.inject(options);

  beforeAll(async () => {
    dir = await tempDir('headstart-studio-api-');
    studio = await createStudioServer({ dir, assetsDir: join(dir, 'no-page'), limits: { maxFileBytes: 200_000, maxPixels: 1_000_000 } });
  });
  afterAll(async () => {
    await studio?.close();
  });

  it('answers health and refuses an unknown task', async () => {
    expect((await inject({ method: 'GET', url: '/api/health' })).json()).toMatchObject({ status: 'ok' });
    const bad = await inject({ method: 'POST', url: '/api/projects', payload: { name: 'x', task: 'video' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('bad_task');
  });

  it('keeps image classes as folders: add, rename, delete; refuses unsafe or duplicate names', async () => {
    const created = await inject({ method: 'POST', url: '/api/projects', payload: { name: 'Ants & Bees', task: 'image' } });
    expect(created.statusCode).toBe(201);
    const { id } = created.json() as { id: string };
    expect(id).toBe('ants-bees');
    for (const name of ['ants', 'bees', 'wasps']) expect((await inject({ method: 'POST', url: `/api/projects/${id}/classes`, payload: { name } })).statusCode).toBe(201);
    for (const name of ['../escape', '.hidden', 'a/b', 'train', '']) {
      const refused = await inject({ method: 'POST', url: `/api/projects/${id}/classes`, payload: { name } });
      expect(refused.statusCode, name).toBe(400);
    }
    expect((await inject({ method: 'POST', url: `/api/projects/${id}/classes`, payload: { name: 'Ants' } })).statusCode).toBe(409);
    expect((await inject({ method: 'PATCH', url: `/api/projects/${id}/classes/wasps`, payload: { name: 'hornets' } })).json()).toEqual({ name: 'hornets' });
    expect((await inject({ method: 'DELETE', url: `/api/projects/${id}/classes/hornets` })).statusCode).toBe(204);
    expect((await readdir(join(dir, id))).filter((n) => !n.startsWith('.')).sort()).toEqual(['ants', 'bees', 'headstart-project.json']);
    const listed = (await inject({ method: 'GET', url: '/api/projects' })).json() as { projects: { id: string; classes: { name: string }[] }[] };
    expect(listed.projects.find((p) => p.id === id)?.classes.map((c) => c.name)).toEqual(['ants', 'bees']);
  });

  it('stores uploads checked by content, under sanitised names, inside the class folder only', async () => {
    const id = 'ants-bees';
    const png = await makeImage(20, 20, { r: 200, g: 10, b: 10 }, 'png');
    const jpeg = await makeImage(20, 20, { r: 10, g: 10, b: 200 }, 'jpeg');
    const upload = multipart([
      { name: '../../outside.png', bytes: png },
      { name: 'blue.png', bytes: jpeg }, // a JPEG named .png is stored as .jpg
      { name: 'blue.png', bytes: jpeg }, // the same file again: skipped
    ]);
    const stored = await inject({ method: 'POST', url: `/api/projects/${id}/classes/ants/examples`, ...upload });
    expect(stored.statusCode).toBe(201);
    expect(stored.json()).toEqual({ added: ['outside.png', 'blue.jpg'], duplicates: ['blue.jpg'] });
    expect((await readdir(join(dir, id, 'ants'))).sort()).toEqual(['blue.jpg', 'outside.png']);
    expect(await readdir(dir)).not.toContain('outside.png');

    // Not an image, too large, too many pixels, wrong field: refused, and nothing of the request stored.
    const notImage = await inject({ method: 'POST', url: `/api/projects/${id}/classes/bees/examples`, ...multipart([{ name: 'ok.png', bytes: png }, { name: 'x.jpg', bytes: Buffer.from('#!/bin/sh\necho hi\n') }]) });
    expect(notImage.statusCode).toBe(415);
    expect(notImage.json().error.message).toContain('x.jpg');
    const big = await inject({ method: 'POST', url: `/api/projects/${id}/classes/bees/examples`, ...multipart([{ name: 'big.bin', bytes: Buffer.alloc(300_000, 1) }]) });
    expect(big.statusCode).toBe(413);
    const huge = await inject({ method: 'POST', url: `/api/projects/${id}/classes/bees/examples`, ...multipart([{ name: 'huge.png', bytes: await makeImage(2000, 1000, { r: 0, g: 0, b: 0 }, 'png') }]) });
    expect(huge.statusCode).toBe(413);
    expect(huge.json().error.code).toBe('too_many_pixels');
    const field = await inject({ method: 'POST', url: `/api/projects/${id}/classes/bees/examples`, ...multipart([{ name: 'ok.png', bytes: png }], 'other') });
    expect(field.statusCode).toBe(400);
    expect(await readdir(join(dir, id, 'bees'))).toEqual([]);

    // Examples are read back only by names the folder lists.
    const file = await inject({ method: 'GET', url: `/api/projects/${id}/classes/ants/examples/blue.jpg` });
    expect(file.headers['content-type']).toBe('image/jpeg');
    expect(Buffer.compare(file.rawPayload, jpeg)).toBe(0);
    for (const url of [`/api/projects/${id}/classes/ants/examples/..%2F..%2Fheadstart-project.json`, `/api/projects/${id}/classes/ants/examples/.studio`, `/api/projects/${id}/classes/..%2F..%2Fetc/examples/passwd`, `/api/projects/..%2F${id}/classes/ants/examples`]) {
      expect((await inject({ method: 'GET', url })).statusCode, url).toBe(404);
    }

    // Relabel (move) and delete.
    expect((await inject({ method: 'POST', url: `/api/projects/${id}/classes/ants/examples/blue.jpg/move`, payload: { to: 'bees' } })).json()).toEqual({ id: 'blue.jpg' });
    expect((await inject({ method: 'GET', url: `/api/projects/${id}/classes/bees/examples` })).json()).toEqual({ examples: [{ id: 'blue.jpg' }] });
    expect((await inject({ method: 'DELETE', url: `/api/projects/${id}/classes/ants/examples/outside.png` })).statusCode).toBe(204);
    expect(await readdir(join(dir, id, 'ants'))).toEqual([]);

    // The project is an ImageFolder: what `headstart train` reads.
    await inject({ method: 'POST', url: `/api/projects/${id}/classes/ants/examples`, ...multipart([{ name: 'a.png', bytes: png }, { name: 'b.png', bytes: await makeImage(21, 20, { r: 190, g: 20, b: 10 }, 'png') }]) });
    await inject({ method: 'POST', url: `/api/projects/${id}/classes/bees/examples`, ...multipart([{ name: 'c.png', bytes: await makeImage(22, 20, { r: 10, g: 20, b: 190 }, 'png') }]) });
    const dataset = await readImageFolder(join(dir, id));
    expect(dataset.classes).toEqual(['ants', 'bees']);
    expect(dataset.train.length + dataset.validation.length).toBe(4);
  });

  it('refuses writes from another origin, requests for another host, and cross-site fetches', async () => {
    const evil = await inject({ method: 'POST', url: '/api/projects', headers: { origin: 'http://evil.example' }, payload: { name: 'pwned', task: 'image' } });
    expect(evil.statusCode).toBe(403);
    expect(evil.json().error.code).toBe('cross_origin');
    const crossSite = await inject({ method: 'DELETE', url: '/api/projects/ants-bees/classes/ants', headers: { 'sec-fetch-site': 'cross-site' } });
    expect(crossSite.statusCode).toBe(403);
    const rebinding = await inject({ method: 'GET', url: '/api/projects', headers: { host: 'evil.example:7860' } });
    expect(rebinding.statusCode).toBe(403);
    expect((await readdir(dir)).includes('pwned')).toBe(false);
    expect((await readdir(join(dir, 'ants-bees'))).includes('ants')).toBe(true);
    const own = await inject({ method: 'POST', url: '/api/projects', headers: { origin: 'http://localhost:80', 'sec-fetch-site': 'same-origin' }, payload: { name: 'mine', task: 'audio' } });
    expect(own.statusCode).toBe(201);
  });

  it('checks audio uploads are WAV files', async () => {
    const notWav = await inject({ method: 'POST', url: '/api/projects/mine/classes', payload: { name: 'yes' } }).then(() =>
      inject({ method: 'POST', url: '/api/projects/mine/classes/yes/examples', ...multipart([{ name: 'clip.wav', bytes: Buffer.from('RIFF....not really') }]) }),
    );
    expect(notWav.statusCode).toBe(415);
    expect(notWav.json().error.code).toBe('not_a_wav');
  });

  it('trains a text project (lines and a CSV import), reports held-out metrics, predicts, exports, and survives a restart', async () => {
    const { id } = (await inject({ method: 'POST', url: '/api/projects', payload: { name: 'News', task: 'text' } })).json() as { id: string };
    await inject({ method: 'POST', url: `/api/projects/${id}/classes`, payload: { name: 'weather' } });
    await inject({ method: 'POST', url: `/api/projects/${id}/classes`, payload: { name: 'sport' } });
    const early = await inject({ method: 'POST', url: `/api/projects/${id}/train`, payload: { backbone: 'tfidf' } });
    expect(early.statusCode).toBe(400);
    expect(early.json().error.code).toBe('too_few_examples');

    const added = await inject({ method: 'POST', url: `/api/projects/${id}/classes/weather/examples`, payload: { texts: [...TEXTS.weather!, '  ', TEXTS.weather![0]!] } });
    expect(added.json()).toEqual({ added: 6, duplicates: 1 });
    const csv = `text,label\n${TEXTS.sport!.map((t) => `"${t}",sport`).join('\n')}\n"a, comma ""quoted"" line",sport\n`;
    const imported = await inject({ method: 'POST', url: `/api/projects/${id}/import`, ...multipart([{ name: 'sport.csv', bytes: Buffer.from(csv) }]) });
    expect(imported.json()).toEqual({ added: 7, classes: ['sport'] });
    const sport = (await inject({ method: 'GET', url: `/api/projects/${id}/classes/sport/examples` })).json() as { examples: { id: string; text: string }[] };
    expect(sport.examples.map((e) => e.text)).toContain('a, comma "quoted" line');
    // Relabel the odd one out, then delete it.
    const odd = sport.examples.find((e) => e.text.startsWith('a, comma'))!;
    await inject({ method: 'POST', url: `/api/projects/${id}/classes/sport/examples/${odd.id}/move`, payload: { to: 'weather' } });
    expect((await inject({ method: 'DELETE', url: `/api/projects/${id}/classes/weather/examples/${odd.id}` })).statusCode).toBe(204);
    // The CSV is what `headstart train` reads.
    const dataset = await readTextDataset(join(dir, id));
    expect(dataset.classes).toEqual(['sport', 'weather']);
    expect(dataset.train.length + dataset.validation.length).toBe(12);

    const unknown = await inject({ method: 'POST', url: `/api/projects/${id}/train`, payload: { backbone: '/etc/passwd' } });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.code).toBe('unknown_backbone');

    const started = await inject({ method: 'POST', url: `/api/projects/${id}/train`, payload: { backbone: 'tfidf', head: 'linear' } });
    expect(started.statusCode).toBe(202);
    expect(started.json().state).toBe('running');
    const events = await inject({ method: 'GET', url: `/api/projects/${id}/train/events` });
    expect(events.headers['content-type']).toContain('text/event-stream');
    const kinds = [...events.payload.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    expect(kinds).toContain('progress');
    expect(kinds).toContain('epoch');
    expect(kinds.at(-1)).toBe('state');
    const status = await waitForTraining(studio, id);
    expect(status.state, status.error).toBe('done');
    const model = await Classifier.load(join(dir, id, '.studio', 'model'));
    try {
      // The numbers the page shows are the model folder's held-out ones.
      expect(status.metrics!.validation!.accuracy).toBe(model.metrics.validation!.accuracy);
      expect(status.metrics!.validation!.n).toBe(dataset.validation.length);
      const predicted = await inject({ method: 'POST', url: `/api/projects/${id}/predict`, payload: { text: 'goal in the final match' } });
      const library = await model.predict('goal in the final match');
      expect(predicted.json()).toEqual(library.map((p) => ({ label: p.label, probability: expect.closeTo(p.probability, 6) })));

      const onnx = await inject({ method: 'GET', url: `/api/projects/${id}/export.onnx` });
      expect(onnx.headers['content-disposition']).toContain(`${id}.onnx`);
      const session = await ort.InferenceSession.create(onnx.rawPayload);
      expect(session.outputNames.length).toBeGreaterThan(0);
      await session.release();
      const zip = unzipSync(new Uint8Array((await inject({ method: 'GET', url: `/api/projects/${id}/model.zip` })).rawPayload));
      expect(Object.keys(zip)).toEqual(expect.arrayContaining([`${id}-model/manifest.json`, `${id}-model/head.bin`, `${id}-model/report.html`]));
      const report = await inject({ method: 'GET', url: `/api/projects/${id}/report` });
      expect(report.payload).toContain('Written by headstart.');
    } finally {
      await model.dispose();
    }

    // A restart (a new server on the same folder) finds the projects, examples, model and numbers.
    await studio.close();
    studio = await createStudioServer({ dir, assetsDir: join(dir, 'no-page') });
    const again = (await inject({ method: 'GET', url: `/api/projects/${id}` })).json() as { classes: { name: string; examples: number }[]; training: TrainStatus; model: { labels: string[] } };
    expect(again.classes).toEqual([{ name: 'weather', examples: 6 }, { name: 'sport', examples: 6 }]);
    expect(again.training.state).toBe('done');
    expect(again.training.metrics!.validation!.accuracy).toBe(status.metrics!.validation!.accuracy);
    expect(again.model.labels).toEqual(['sport', 'weather']);
    expect((await inject({ method: 'POST', url: `/api/projects/${id}/predict`, payload: { text: 'snow and rain' } })).statusCode).toBe(200);
  });

  it('after a crash, reports an interrupted run as failed and takes back class folders the project file missed', async () => {
    const { id } = (await inject({ method: 'POST', url: '/api/projects', payload: { name: 'Crashy', task: 'image' } })).json() as { id: string };
    await mkdir(join(dir, id, '.studio'), { recursive: true });
    await writeFile(join(dir, id, '.studio', 'training.json'), JSON.stringify({ state: 'running', startedAt: new Date().toISOString() }));
    await mkdir(join(dir, id, 'cats'));
    await studio.close();
    studio = await createStudioServer({ dir, assetsDir: join(dir, 'no-page') });
    const project = (await inject({ method: 'GET', url: `/api/projects/${id}` })).json() as { classes: { name: string }[]; training: TrainStatus };
    expect(project.classes.map((c) => c.name)).toEqual(['cats']);
    expect(project.training.state).toBe('failed');
    expect(project.training.error).toContain('interrupted');
    expect(JSON.parse(await readFile(join(dir, id, 'headstart-project.json'), 'utf8')).classes).toEqual(['cats']);
  });
});
