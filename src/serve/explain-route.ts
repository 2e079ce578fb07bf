/**
 * POST /v1/models/<name>/explain — the predict route's inputs and limits (raw image bytes or a
 * multipart batch, checked before decoding), answered with one explanation per input in the shape
 * `headstart explain --json` prints. Query: method, target, steps (or `auto` with max_steps), baseline, smoothgrad.
 * A detector served under <name> (also at POST /v1/detectors/<name>/explain) answers with per-box
 * Grad-CAM instead, as `headstart explain <detector> --json` prints it; query: threshold and
 * max_detections as the detect route reads them.
 * Explanations take many backbone passes, so each model runs one at a time; at most
 * `maxConcurrent` requests wait, beyond that 429.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Classifier } from '../classifier/classifier.js';
import type { Detector } from '../detector/detector.js';
import { DetectionExplainer } from '../explain/detection-grad-cam.js';
import { EXPLAIN_METHODS, type ExplainOptions } from '../explain/explain.js';
import { AUTO_FIRST_STEPS } from '../explain/integrated-gradients.js';
import type { ImageExplanation } from '../explain/image-explainer.js';
import { detectionExplanationJson, imageExplanationJson } from '../explain/output.js';
import { HeadstartError, messageOf } from '../util/errors.js';
import { parseDetectionQuery } from './detect-route.js';
import { HttpError, readRequestInputs, type InputLimits } from './inputs.js';

export interface ExplainRouteContext {
  model: (name: string) => Classifier | undefined;
  detector?: (name: string) => Detector | undefined;
  limits: InputLimits & { maxConcurrent: number };
}

interface ExplainQuery {
  method?: string;
  target?: string;
  steps?: string;
  max_steps?: string;
  baseline?: string;
  smoothgrad?: string;
  threshold?: string;
  max_detections?: string;
}

/** Integrated-gradient steps one request may ask for, `auto` included. */
const MAX_STEPS = 256;

/** Each box is one forward and backward pass, so fewer than detect's 100 by default. */
const DETECTOR_DEFAULT_BOXES = 20;
const DETECTOR_MAX_BOXES = 100;

export function registerExplainRoute(app: FastifyInstance, context: ExplainRouteContext): void {
  const queues = new Map<string, Promise<unknown>>();
  // Built on a detector's first explanation (a second graph, seconds to build), released with the app.
  const detectionExplainers = new Map<string, Promise<DetectionExplainer>>();
  app.addHook('onClose', async () => {
    for (const explainer of detectionExplainers.values()) await (await explainer.catch(() => undefined))?.release();
  });
  let waiting = 0;
  const known = (name: string) => context.model(name) ?? context.detector?.(name);
  const route = (url: string, lookup: (name: string) => unknown, listing: string) =>
    app.post<{ Params: { name: string }; Querystring: ExplainQuery }>(
      url,
      {
        onRequest: async (request, reply) => {
          if (!lookup(request.params.name)) throw new HttpError(404, 'unknown_model', `no model named "${request.params.name.slice(0, 100)}"; ${listing} lists them`);
          if (waiting >= context.limits.maxConcurrent) {
            reply.header('retry-after', '1');
            throw new HttpError(429, 'too_busy', `${waiting} explanations waiting, the limit is ${context.limits.maxConcurrent}; retry shortly`, 'too_busy');
          }
        },
      },
      async (request, reply) => {
        const name = request.params.name;
        const classifier = context.model(name);
        const explain: () => Promise<unknown[]> = classifier ? await classifierWork(classifier, name, request) : await detectorWork(context.detector!(name)!, name, request);
        waiting++;
        try {
          const previous = queues.get(name) ?? Promise.resolve();
          const run = previous.catch(() => undefined).then(explain);
          queues.set(name, run);
          return reply.send({ model: name, explanations: await run });
        } finally {
          waiting--;
        }
      },
    );

  /** Reads and checks the request now; the returned work runs in the model's queue. */
  const classifierWork = async (classifier: Classifier, name: string, request: FastifyRequest<{ Querystring: ExplainQuery }>) => {
    const modality = classifier.manifest.modality;
    if (modality !== 'image') throw new HttpError(400, 'not_explainable', `explanations cover image models; "${name}" is a ${modality} model`);
    const options = parseOptions(request.query);
    const { inputs, names } = await readRequestInputs(request, modality, context.limits);
    return async () => {
      const out = [];
      for (const [i, input] of inputs.entries()) out.push(imageExplanationJson(names[i]!, await asHttpErrors(() => classifier.explain(input, options) as Promise<ImageExplanation>, inputs.length > 1 ? `input ${names[i]}: ` : '')));
      return out;
    };
  };

  const detectorWork = async (detector: Detector, name: string, request: FastifyRequest<{ Querystring: ExplainQuery }>) => {
    const { query } = request;
    if (query.method !== undefined && query.method !== 'gradcam') throw new HttpError(400, 'bad_explain_option', `detectors are explained per box with method=gradcam, got "${query.method.slice(0, 40)}"`);
    const unused = (['target', 'steps', 'max_steps', 'baseline', 'smoothgrad'] as const).filter((key) => query[key] !== undefined);
    if (unused.length > 0) throw new HttpError(400, 'bad_explain_option', `${unused.join(', ')} apply to classifiers; "${name}" is a detector (threshold and max_detections apply)`);
    const { threshold, maxDetections } = parseDetectionQuery(query, DETECTOR_DEFAULT_BOXES, DETECTOR_MAX_BOXES);
    if (!detector.layout.graphSpec) throw new HttpError(400, 'not_explainable', `per-box Grad-CAM covers CenterNet, Ultralytics YOLO and DETR detectors; "${name}" is a ${detector.layout.kind} model`);
    const { inputs, names } = await readRequestInputs(request, 'image', context.limits);
    return async () => {
      if (!detectionExplainers.has(name)) detectionExplainers.set(name, DetectionExplainer.forDetector(detector));
      const explainer = await detectionExplainers.get(name)!;
      const out = [];
      for (const [i, input] of inputs.entries()) {
        const boxes = await asHttpErrors(() => explainer.explain(input as Uint8Array, { threshold, maxDetections }), inputs.length > 1 ? `input ${names[i]}: ` : '');
        out.push(detectionExplanationJson(names[i]!, boxes, detector.classes));
      }
      return out;
    };
  };

  route('/v1/models/:name/explain', known, 'GET /v1/models or GET /v1/detectors');
  if (context.detector) route('/v1/detectors/:name/explain', context.detector, 'GET /v1/detectors');
}

/** The library's refusals of an input or option, as the client's errors (the predict route's wording). */
async function asHttpErrors<T>(work: () => Promise<T>, where: string): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof HeadstartError && error.kind === 'data') throw new HttpError(400, 'undecodable_input', `${where}${messageOf(error).replace(/^.*?: (?=cannot)/, '')}`, 'undecodable');
    if (error instanceof HeadstartError && error.kind === 'usage') throw new HttpError(400, 'bad_explain_option', messageOf(error));
    throw error;
  }
}

function parseOptions(query: ExplainQuery): ExplainOptions {
  const options: ExplainOptions = {};
  if (query.method !== undefined) {
    if (!(EXPLAIN_METHODS as readonly string[]).includes(query.method)) throw new HttpError(400, 'bad_explain_option', `method must be one of ${EXPLAIN_METHODS.join(', ')}, got "${query.method.slice(0, 40)}"`);
    options.method = query.method as ExplainOptions['method'];
  }
  if (query.target !== undefined) options.target = query.target;
  const integer = (value: string | undefined, field: string, min: number, max: number) => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new HttpError(400, 'bad_explain_option', `${field} must be an integer from ${min} to ${max}, got "${value.slice(0, 20)}"`);
    return n;
  };
  // Bounded, so one request cannot ask for hours of work.
  if (query.steps === 'auto') {
    options.steps = 'auto';
    options.maxSteps = integer(query.max_steps, 'max_steps', AUTO_FIRST_STEPS, MAX_STEPS) ?? MAX_STEPS;
  } else {
    const steps = integer(query.steps, 'steps', 1, MAX_STEPS);
    if (steps !== undefined) options.steps = steps;
  }
  const smooth = integer(query.smoothgrad, 'smoothgrad', 0, 64);
  if (smooth !== undefined) options.smoothGrad = smooth;
  if (query.baseline !== undefined) {
    if (query.baseline !== 'black' && query.baseline !== 'blurred') throw new HttpError(400, 'bad_explain_option', `baseline must be black or blurred, got "${query.baseline.slice(0, 20)}"`);
    options.baseline = query.baseline;
  }
  return options;
}
