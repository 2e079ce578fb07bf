/**
 * POST /v1/models/<name>/explain — the predict route's inputs and limits (raw image bytes or a
 * multipart batch, checked before decoding), answered with one explanation per input in the shape
 * `headstart explain --json` prints. Query: method, target, steps, baseline, smoothgrad.
 * Explanations take many backbone passes, so each model runs one at a time; at most
 * `maxConcurrent` requests wait, beyond that 429.
 */
import type { FastifyInstance } from 'fastify';
import type { Classifier } from '../classifier/classifier.js';
import { EXPLAIN_METHODS, type ExplainOptions } from '../explain/explain.js';
import type { ImageExplanation } from '../explain/image-explainer.js';
import { imageExplanationJson } from '../explain/output.js';
import { HeadstartError, messageOf } from '../util/errors.js';
import { HttpError, readRequestInputs, type InputLimits } from './inputs.js';

export interface ExplainRouteContext {
  model: (name: string) => Classifier | undefined;
  limits: InputLimits & { maxConcurrent: number };
}

interface ExplainQuery {
  method?: string;
  target?: string;
  steps?: string;
  baseline?: string;
  smoothgrad?: string;
}

export function registerExplainRoute(app: FastifyInstance, context: ExplainRouteContext): void {
  const queues = new Map<string, Promise<unknown>>();
  let waiting = 0;
  app.post<{ Params: { name: string }; Querystring: ExplainQuery }>(
    '/v1/models/:name/explain',
    {
      onRequest: async (request, reply) => {
        if (!context.model(request.params.name)) throw new HttpError(404, 'unknown_model', `no model named "${request.params.name.slice(0, 100)}"; GET /v1/models lists them`);
        if (waiting >= context.limits.maxConcurrent) {
          reply.header('retry-after', '1');
          throw new HttpError(429, 'too_busy', `${waiting} explanations waiting, the limit is ${context.limits.maxConcurrent}; retry shortly`, 'too_busy');
        }
      },
    },
    async (request, reply) => {
      const name = request.params.name;
      const classifier = context.model(name)!;
      const modality = classifier.manifest.modality;
      if (modality !== 'image') throw new HttpError(400, 'not_explainable', `explanations cover image models; "${name}" is a ${modality} model`);
      const options = parseOptions(request.query);
      const { inputs, names } = await readRequestInputs(request, modality, context.limits);
      waiting++;
      try {
        const previous = queues.get(name) ?? Promise.resolve();
        const run = previous.catch(() => undefined).then(async () => {
          const out = [];
          for (const [i, input] of inputs.entries()) out.push(imageExplanationJson(names[i]!, await explainOne(classifier, input, options, inputs.length > 1 ? `input ${names[i]}: ` : '')));
          return out;
        });
        queues.set(name, run);
        return reply.send({ model: name, explanations: await run });
      } finally {
        waiting--;
      }
    },
  );
}

async function explainOne(classifier: Classifier, input: Uint8Array | string, options: ExplainOptions, where: string): Promise<ImageExplanation> {
  try {
    return (await classifier.explain(input, options)) as ImageExplanation;
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
  const steps = integer(query.steps, 'steps', 1, 256);
  if (steps !== undefined) options.steps = steps;
  const smooth = integer(query.smoothgrad, 'smoothgrad', 0, 64);
  if (smooth !== undefined) options.smoothGrad = smooth;
  if (query.baseline !== undefined) {
    if (query.baseline !== 'black' && query.baseline !== 'blurred') throw new HttpError(400, 'bad_explain_option', `baseline must be black or blurred, got "${query.baseline.slice(0, 20)}"`);
    options.baseline = query.baseline;
  }
  return options;
}
