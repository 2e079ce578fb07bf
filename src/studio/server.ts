/**
 * `headstart studio`: the page and its REST API, on the same Fastify stack as `serve`
 * (`src/serve/app.ts`: limits, error format; `src/serve/inputs.ts`: prediction inputs). Routes:
 *
 *   GET    /api/health
 *   GET    /api/projects                                   POST /api/projects {name, task} → 201 {id}
 *   GET    /api/projects/:id                               the project, its classes and counts, training, backbones
 *   POST   /api/projects/:id/classes {name}                PATCH|DELETE /api/projects/:id/classes/:class
 *   GET    /api/projects/:id/classes/:class/examples       POST (multipart field `files`, or {texts} for text)
 *   GET    /api/projects/:id/classes/:class/examples/:ex   the file (images, audio)
 *   POST   /api/projects/:id/classes/:class/examples/:ex/move {to}     DELETE …/examples/:ex
 *   POST   /api/projects/:id/import                        multipart: a labelled CSV/TSV/JSONL (text projects)
 *   POST   /api/projects/:id/train {backbone?, head?, augment?, unfreeze?} → 202
 *   GET    /api/projects/:id/train                         {state, metrics?, error?, …}
 *   POST   /api/projects/:id/train/cancel
 *   GET    /api/projects/:id/train/events                  server-sent events
 *   POST   /api/projects/:id/predict                       image bytes, WAV bytes, or {text} → [{label, probability}]
 *   GET    /api/projects/:id/report                        the model's report.html
 *   GET    /api/projects/:id/export.onnx                   GET /api/projects/:id/model.zip
 *   GET    /api/projects/:id/export                        the export's size, metadata (inputs, labels) and parity check
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { topPredictions } from '../classifier/classifier.js';
import { createHttpApp } from '../serve/app.js';
import { HttpError, mediaType, readRequestInputs, type InputLimits } from '../serve/inputs.js';
import { REPORT_FILE } from '../report/report.js';
import { VERSION } from '../version.js';
import { DEFAULT_ASSETS_DIR, loadPageAssets } from './assets.js';
import { backboneChoices } from './backbones.js';
import { OriginPolicy } from './origin.js';
import { ProjectStore, type Project, type UploadedFile } from './project-store.js';
import { ProjectTraining, type TrainEvent, type TrainingContext } from './training.js';
import { DEFAULT_UPLOAD_LIMITS, type UploadLimits } from './uploads.js';

export interface StudioOptions {
  /** Where projects live (one folder each). */
  dir: string;
  /** The built page (default: this package's dist/studio). */
  assetsDir?: string;
  cacheDir?: string;
  /** Backbone references offered besides the builtins and cached hub models. */
  backbones?: string[];
  hub?: TrainingContext['hub'];
  hubCache?: string;
  limits?: Partial<StudioLimits>;
  logger?: Parameters<typeof createHttpApp>[0]['logger'];
}

export interface StudioLimits extends InputLimits, UploadLimits {
  /** Files in one upload request. */
  maxFiles: number;
}

export const DEFAULT_STUDIO_LIMITS: StudioLimits = {
  ...DEFAULT_UPLOAD_LIMITS,
  maxBodyBytes: 64 * 1024 * 1024,
  maxTextLength: 10_000,
  maxBatchInputs: 32,
  maxFiles: 64,
};

export interface StudioServer {
  readonly app: FastifyInstance;
  readonly store: ProjectStore;
  training(project: Project): Promise<ProjectTraining>;
  listen(port: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; " +
  "connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export async function createStudioServer(options: StudioOptions): Promise<StudioServer> {
  const limits = { ...DEFAULT_STUDIO_LIMITS, ...options.limits };
  const store = new ProjectStore(options.dir);
  const context: TrainingContext = { cacheDir: options.cacheDir, extraBackbones: options.backbones ?? [], hub: options.hub, hubCache: options.hubCache };
  const policy = new OriginPolicy();
  const assets = await loadPageAssets(options.assetsDir ?? DEFAULT_ASSETS_DIR);
  const trainings = new Map<string, Promise<ProjectTraining>>();
  const streams = new Set<FastifyReply>();
  const app = await createHttpApp({ limits, logger: options.logger ?? false, maxFiles: limits.maxFiles });

  const training = (project: Project) => {
    let found = trainings.get(project.id);
    if (!found) {
      found = ProjectTraining.restore(project, context);
      trainings.set(project.id, found);
    }
    return found;
  };
  type ProjectParams = { id: string; class?: string; example?: string };
  const projectOf = (request: FastifyRequest) => store.get((request.params as ProjectParams).id);
  const classOf = (request: FastifyRequest) => (request.params as ProjectParams).class ?? '';

  // Every request: the host must be ours; every write: the origin must be ours.
  app.addHook('onRequest', async (request, reply) => {
    policy.check(request);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'SAMEORIGIN');
    reply.header('cache-control', 'no-store');
  });

  // The page.
  const page = (_request: FastifyRequest, reply: FastifyReply) => {
    if (!assets.index) return reply.status(503).type('text/plain; charset=utf-8').send('The studio page is not built: run `npm run build` in the headstart package. The API under /api works.');
    return reply.header('content-security-policy', PAGE_CSP).type('text/html; charset=utf-8').send(assets.index);
  };
  app.get('/', page);
  app.get('/index.html', page);
  app.get<{ Params: { file: string } }>('/assets/:file', async (request, reply) => {
    const file = assets.files.get(request.params.file);
    if (!file) throw new HttpError(404, 'not_found', `no asset ${request.params.file.slice(0, 100)}`);
    return reply.header('cache-control', 'public, max-age=31536000, immutable').type(file.type).send(file.bytes);
  });

  app.get('/api/health', async () => ({ status: 'ok', version: VERSION }));
  app.get('/api/projects', async () => ({ projects: await store.list() }));
  app.post('/api/projects', async (request, reply) => {
    const { name, task } = (request.body ?? {}) as { name?: unknown; task?: unknown };
    const project = await store.create(name, task);
    return reply.status(201).send({ id: project.id });
  });
  app.get('/api/projects/:id', async (request) => {
    const project = await projectOf(request);
    const run = await training(project);
    const model = await run.model().catch(() => undefined);
    return {
      ...(await project.summary()),
      training: run.current(),
      model: model ? { labels: model.labels, backbone: model.manifest.backbone.id, head: model.head.type, createdAt: model.manifest.createdAt, validation: model.metrics.validation ?? null } : null,
      backbones: await backboneChoices(project.task, context.extraBackbones, context.hubCache),
    };
  });

  app.post('/api/projects/:id/classes', async (request, reply) => {
    const project = await projectOf(request);
    const name = await project.addClass(((request.body ?? {}) as { name?: unknown }).name);
    return reply.status(201).send({ name });
  });
  app.patch('/api/projects/:id/classes/:class', async (request) => {
    const project = await projectOf(request);
    return { name: await project.renameClass(classOf(request), ((request.body ?? {}) as { name?: unknown }).name) };
  });
  app.delete('/api/projects/:id/classes/:class', async (request, reply) => {
    const project = await projectOf(request);
    await project.deleteClass(classOf(request));
    return reply.status(204).send();
  });

  app.get('/api/projects/:id/classes/:class/examples', async (request) => {
    const project = await projectOf(request);
    return { examples: await project.listExamples(classOf(request)) };
  });
  app.post('/api/projects/:id/classes/:class/examples', async (request, reply) => {
    const project = await projectOf(request);
    const name = classOf(request);
    project.checkClass(name);
    if (mediaType(request) === 'application/json') {
      return reply.status(201).send(await project.addTexts(name, ((request.body ?? {}) as { texts?: unknown }).texts));
    }
    if (mediaType(request) !== 'multipart/form-data') throw new HttpError(415, 'unsupported_media_type', 'send multipart/form-data with the files in field "files" (or {"texts": […]} for text projects)', 'content_type');
    const files = await readFiles(request, limits);
    if (files.length === 0) throw new HttpError(400, 'no_files', 'the request holds no files in field "files"');
    return reply.status(201).send(await project.addFiles(name, files, limits));
  });
  app.get('/api/projects/:id/classes/:class/examples/:example', async (request, reply) => {
    const project = await projectOf(request);
    const path = await project.examplePath(classOf(request), (request.params as ProjectParams).example!);
    const type = project.task === 'audio' ? 'audio/wav' : imageType(path);
    return reply.type(type).send(await readFile(path));
  });
  app.post('/api/projects/:id/classes/:class/examples/:example/move', async (request) => {
    const project = await projectOf(request);
    return { id: await project.moveExample(classOf(request), (request.params as ProjectParams).example!, ((request.body ?? {}) as { to?: unknown }).to) };
  });
  app.delete('/api/projects/:id/classes/:class/examples/:example', async (request, reply) => {
    const project = await projectOf(request);
    await project.deleteExample(classOf(request), (request.params as ProjectParams).example!);
    return reply.status(204).send();
  });
  app.post('/api/projects/:id/import', async (request, reply) => {
    const project = await projectOf(request);
    if (mediaType(request) !== 'multipart/form-data') throw new HttpError(415, 'unsupported_media_type', 'send the CSV file as multipart/form-data, field "files"', 'content_type');
    const files = await readFiles(request, limits);
    if (files.length !== 1) throw new HttpError(400, 'one_file', 'import takes exactly one CSV/TSV/JSONL file');
    return reply.status(201).send(await project.importTexts(files[0]!.bytes, files[0]!.name));
  });

  app.post('/api/projects/:id/train', async (request, reply) => {
    const run = await training(await projectOf(request));
    return reply.status(202).send(await run.start(request.body));
  });
  app.get('/api/projects/:id/train', async (request) => (await training(await projectOf(request))).current());
  app.post('/api/projects/:id/train/cancel', async (request) => (await training(await projectOf(request))).cancel());
  app.get('/api/projects/:id/train/events', async (request, reply) => {
    const run = await training(await projectOf(request));
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    streams.add(reply);
    let unsubscribe = () => {};
    const end = () => {
      clearInterval(heartbeat);
      unsubscribe();
      streams.delete(reply);
      if (!raw.writableEnded) raw.end();
    };
    // Comments keep proxies and idle timers from closing a quiet stream.
    const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), 15_000);
    heartbeat.unref();
    const send = (event: TrainEvent) => {
      if (raw.writableEnded) return;
      raw.write(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
      // The stream ends with the run: the last event is its final state.
      if (event.type === 'state' && event.status.state !== 'running') setImmediate(end);
    };
    raw.on('close', end);
    unsubscribe = run.subscribe(send);
  });

  app.post('/api/projects/:id/predict', async (request) => {
    const project = await projectOf(request);
    const model = await (await training(project)).requireModel();
    const { inputs, names, batch } = await readRequestInputs(request, project.task, limits);
    const k = model.labels.length;
    const probabilities = await model.predictProbabilities(inputs as never[], names);
    const rows = inputs.map((_, i) => topPredictions(probabilities.subarray(i * k, (i + 1) * k), model.labels, k));
    return batch ? { results: rows.map((predictions, i) => ({ input: names[i], predictions })) } : rows[0];
  });
  app.get('/api/projects/:id/report', async (request, reply) => {
    const run = await training(await projectOf(request));
    await run.requireModel();
    const html = await readFile(join(run.modelDir, REPORT_FILE)).catch(() => undefined);
    if (!html) throw new HttpError(404, 'no_report', 'the model has no report.html');
    return reply.type('text/html; charset=utf-8').send(html);
  });
  app.get('/api/projects/:id/export.onnx', async (request, reply) => {
    const project = await projectOf(request);
    const { onnx } = await (await training(project)).exportOnnx();
    return reply
      .type('application/octet-stream')
      .header('content-disposition', `attachment; filename="${project.id}.onnx"`)
      .send(Buffer.from(onnx.buffer, onnx.byteOffset, onnx.byteLength));
  });
  app.get('/api/projects/:id/export', async (request) => {
    const project = await projectOf(request);
    const { onnx, metadata, check } = await (await training(project)).exportOnnx();
    return { bytes: onnx.byteLength, metadata, check };
  });
  app.get('/api/projects/:id/model.zip', async (request, reply) => {
    const project = await projectOf(request);
    const zip = await (await training(project)).modelZip();
    return reply.type('application/zip').header('content-disposition', `attachment; filename="${project.id}-model.zip"`).send(Buffer.from(zip.buffer, zip.byteOffset, zip.byteLength));
  });

  return {
    app,
    store,
    training: (project) => training(project),
    async listen(port, host = '127.0.0.1') {
      const address = await app.listen({ port, host });
      const bound = app.server.address();
      policy.listening(host, typeof bound === 'object' && bound ? bound.port : port);
      return address.replace('[::1]', 'localhost');
    },
    async close() {
      for (const reply of streams) reply.raw.end();
      for (const run of trainings.values()) await (await run.catch(() => undefined))?.dispose();
      await app.close();
    },
  };
}

/** The files of a multipart upload (field `files`), each within the per-file limit, all within the body limit. */
async function readFiles(request: FastifyRequest, limits: StudioLimits): Promise<UploadedFile[]> {
  const files: UploadedFile[] = [];
  let total = 0;
  for await (const part of request.parts()) {
    if (part.type !== 'file') continue;
    if (part.fieldname !== 'files') throw new HttpError(400, 'bad_field', `files go in the multipart field "files", not "${part.fieldname.slice(0, 40)}"`);
    if (files.length >= limits.maxFiles) throw new HttpError(413, 'too_many_files', `more than ${limits.maxFiles} files in one request; send them in several`, 'body_too_large');
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of part.file as AsyncIterable<Buffer>) {
      size += chunk.length;
      total += chunk.length;
      if (size > limits.maxFileBytes) throw new HttpError(413, 'file_too_large', `"${part.filename.slice(0, 100)}" is larger than the ${(limits.maxFileBytes / 1e6).toFixed(1)} MB limit per file`, 'body_too_large');
      if (total > limits.maxBodyBytes) throw new HttpError(413, 'body_too_large', `the files add up to more than ${(limits.maxBodyBytes / 1e6).toFixed(0)} MB; send them in several requests`, 'body_too_large');
      chunks.push(chunk);
    }
    files.push({ name: part.filename || `file-${files.length + 1}`, bytes: Buffer.concat(chunks) });
  }
  return files;
}

function imageType(path: string): string {
  const extension = path.slice(path.lastIndexOf('.') + 1).toLowerCase();
  return { jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', gif: 'image/gif', tif: 'image/tiff', tiff: 'image/tiff' }[extension] ?? 'application/octet-stream';
}
