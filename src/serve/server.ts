/**
 * `headstart serve`: trained models over HTTP, on Fastify.
 *
 *   POST /v1/models/<name>/predict   one input (raw bytes, JSON text, WAV) or a batch (multipart files, JSON texts)
 *   POST /v1/models/<name>/explain   the same inputs: why the model predicts what it does (explain-route.ts);
 *                                    for a detector, per-box Grad-CAM (also at /v1/detectors/<name>/explain)
 *   GET  /v1/models                  what is served
 *   GET  /healthz                    200 while serving, 503 while shutting down
 *   GET  /metrics                    Prometheus text: requests, latency, batch sizes, process memory
 *   POST /v1/completions, /v1/chat/completions   causal LMs, OpenAI's format (completions.ts)
 *
 * Each request's inputs are checked against the limits and decoded on their own (so one bad image
 * fails only its request), then queued for the model's micro-batcher, which runs one backbone call
 * per batch. `close()` stops accepting connections and finishes the requests in flight.
 */
import type { FastifyInstance, FastifyReply, FastifyServerOptions } from 'fastify';
import { topPredictions, type Classifier, type Prediction } from '../classifier/classifier.js';
import { probabilitiesWithTemperature } from '../evaluate/calibration.js';
import { HeadstartError, messageOf } from '../util/errors.js';
import { createHttpApp } from './app.js';
import { MicroBatcher, type BatcherOptions } from './batcher.js';
import { DEFAULT_COMPLETION_LIMITS, registerCompletionRoutes, type CompletionLimits, type LanguageModelToServe } from './completions.js';
import { registerDetectionRoutes, type DetectorToServe } from './detect-route.js';
import { registerExplainRoute } from './explain-route.js';
import { HttpError, readRequestInputs, type InputLimits } from './inputs.js';
import { ServerMetrics } from './metrics.js';

export interface ServeLimits extends InputLimits {
  /** Prediction requests processed at once; beyond it, 429 until one finishes. */
  maxConcurrent: number;
}

export const DEFAULT_LIMITS: ServeLimits = {
  maxBodyBytes: 8 * 1024 * 1024,
  maxPixels: 40_000_000,
  maxTextLength: 10_000,
  maxBatchInputs: 32,
  maxConcurrent: 64,
};

/**
 * Batches of 4: MobileNetV2 α=1.0 on this 2-core VM costs 5.9–6.4 ms of CPU per image at batch 4
 * against 7.0–9.1 at batch 16 (4 interleaved rounds, bench-style, load 8–11), and a batch of 16
 * took twice as long in wall time when other jobs ran: its activations (16×112×112×96 floats,
 * 77 MB for one tensor) miss the caches that a batch of 4 mostly hits.
 */
export const DEFAULT_BATCHING: BatcherOptions = { maxBatch: 4, maxWaitMs: 0 };

export interface ServeOptions {
  limits?: Partial<ServeLimits>;
  batching?: Partial<BatcherOptions>;
  /** Fastify's logger: pino options, `false` for none (default: JSON lines at info on stdout). */
  logger?: FastifyServerOptions['logger'];
  /** Causal LMs served OpenAI-style at /v1/completions and /v1/chat/completions. */
  languageModels?: LanguageModelToServe[];
  completionLimits?: Partial<CompletionLimits>;
  /** Detection models served at POST /v1/detectors/<name>/detect. */
  detectors?: DetectorToServe[];
}

export interface ModelToServe {
  /** The name in URLs: letters, digits, `.`, `_`, `-`. */
  name: string;
  classifier: Classifier;
}

const MODEL_NAME = /^[A-Za-z0-9._-]{1,100}$/;

class ServedModel {
  readonly batcher: MicroBatcher<unknown, Float32Array>;

  constructor(
    readonly name: string,
    readonly classifier: Classifier,
    batching: BatcherOptions,
    metrics: ServerMetrics,
  ) {
    const temperature = classifier.manifest.calibration?.temperature ?? 1;
    const k = classifier.labels.length;
    this.batcher = new MicroBatcher(
      async (prepared) => {
        const features = await classifier.backbone.forward(prepared);
        const probabilities = probabilitiesWithTemperature(classifier.head, features, temperature);
        return prepared.map((_, i) => probabilities.slice(i * k, (i + 1) * k));
      },
      batching,
      (size, seconds) => {
        metrics.batchSize.observe({ model: name }, size);
        metrics.batchDuration.observe({ model: name }, seconds);
      },
    );
  }

  /** Decodes one input as the backbone does; an input it cannot use is the client's error. */
  async prepare(input: Uint8Array | string, where: string): Promise<unknown> {
    try {
      return await this.classifier.backbone.prepare(input);
    } catch (error) {
      if (error instanceof HeadstartError && error.kind === 'data') {
        throw new HttpError(400, 'undecodable_input', `${where}${messageOf(error).replace(/^.*?: (?=cannot)/, '')}`, 'undecodable');
      }
      throw error;
    }
  }

  describe() {
    const { manifest } = this.classifier;
    return {
      name: this.name,
      modality: manifest.modality,
      labels: this.classifier.labels,
      backbone: manifest.backbone.id,
      head: this.classifier.head.type,
      validationAccuracy: manifest.metrics.validation?.accuracy ?? null,
      createdAt: manifest.createdAt,
    };
  }
}

export interface HeadstartServer {
  readonly app: FastifyInstance;
  readonly metrics: ServerMetrics;
  /** Starts listening; returns the address (`http://127.0.0.1:8080`). */
  listen(port: number, host?: string): Promise<string>;
  /** Stops accepting connections, answers the requests in flight, then resolves. */
  close(): Promise<void>;
}

export async function createServer(models: ModelToServe[], options: ServeOptions = {}): Promise<HeadstartServer> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const batching = { ...DEFAULT_BATCHING, ...options.batching };
  const metrics = new ServerMetrics();
  const served = new Map<string, ServedModel>();
  for (const { name, classifier } of models) {
    if (!MODEL_NAME.test(name)) throw new Error(`model name "${name}" may only hold letters, digits, ".", "_" and "-"`);
    if (served.has(name)) throw new Error(`two models are named "${name}"`);
    served.set(name, new ServedModel(name, classifier, batching, metrics));
  }
  const detectors = new Map((options.detectors ?? []).map((d) => [d.name, d.detector]));
  // /v1/models/<name>/explain serves both kinds, so one name must mean one model.
  for (const name of detectors.keys()) if (served.has(name)) throw new Error(`a model and a detector are both named "${name}"`);

  const app = await createHttpApp({ limits, logger: options.logger ?? { level: 'info' }, onRejected: (reason) => metrics.rejected.inc({ reason }) });

  let inFlight = 0;
  let closing = false;

  // Keep-alive connections would otherwise hold close() open until they time out.
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  app.get('/healthz', async (_request, reply) =>
    closing ? reply.status(503).send({ status: 'closing' }) : { status: 'ok', models: [...served.keys()] },
  );
  app.get('/v1/models', async () => ({ models: [...served.values()].map((model) => model.describe()) }));
  app.get('/metrics', async (_request, reply) => reply.type(metrics.contentType).send(await metrics.text()));
  registerCompletionRoutes(app, options.languageModels ?? [], { ...DEFAULT_COMPLETION_LIMITS, ...options.completionLimits });
  registerDetectionRoutes(app, options.detectors ?? [], limits, metrics);

  app.post<{ Params: { name: string }; Querystring: { top_k?: string } }>(
    '/v1/models/:name/predict',
    {
      // Runs before the body is read: a refused request costs no upload, no memory.
      onRequest: async (request, reply) => {
        const model = served.get(request.params.name);
        const admitted = inFlight < limits.maxConcurrent;
        if (admitted) metrics.inFlight.set(++inFlight);
        const started = performance.now();
        reply.raw.once('close', () => {
          if (admitted) metrics.inFlight.set(--inFlight);
          const label = model?.name ?? '';
          metrics.requests.inc({ model: label, status: String(reply.statusCode) });
          if (model && reply.statusCode < 400) metrics.latency.observe({ model: label }, (performance.now() - started) / 1000);
        });
        if (!model) throw new HttpError(404, 'unknown_model', `no model named "${request.params.name.slice(0, 100)}"; GET /v1/models lists them`);
        if (!admitted) {
          reply.header('retry-after', '1');
          throw new HttpError(429, 'too_busy', `${inFlight} requests in flight, the limit is ${limits.maxConcurrent}; retry shortly`, 'too_busy');
        }
      },
    },
    async (request, reply: FastifyReply) => {
      const model = served.get(request.params.name)!;
      const labels = model.classifier.labels;
      const topK = parseTopK(request.query.top_k, labels.length);
      const { inputs, names, batch } = await readRequestInputs(request, model.classifier.manifest.modality, limits);
      const prepared = await Promise.all(inputs.map((input, i) => model.prepare(input, batch ? `input ${names[i]}: ` : '')));
      const rows = await Promise.all(prepared.map((item) => model.batcher.submit(item)));
      const predictions = rows.map((row): Prediction[] => topPredictions(row, labels, topK));
      return reply.send(
        batch
          ? { model: model.name, results: predictions.map((p, i) => ({ input: names[i], predictions: p })) }
          : { model: model.name, predictions: predictions[0] },
      );
    },
  );

  registerExplainRoute(app, { model: (name) => served.get(name)?.classifier, detector: (name) => detectors.get(name), limits });

  return {
    app,
    metrics,
    async listen(port, host = '127.0.0.1') {
      const address = await app.listen({ port, host });
      app.log.info({ address, models: [...served.values()].map((model) => model.describe()), limits, batching }, 'serving');
      return address;
    },
    async close() {
      closing = true;
      await app.close();
      for (const model of served.values()) await model.batcher.drain();
    },
  };
}

function parseTopK(value: string | undefined, labels: number): number {
  if (value === undefined) return labels;
  const k = Number(value);
  if (!Number.isInteger(k) || k < 1) throw new HttpError(400, 'bad_top_k', `top_k must be a positive integer, got "${value.slice(0, 20)}"`);
  return Math.min(k, labels);
}
