/**
 * Detection models over HTTP:
 *
 *   GET  /v1/detectors                     the detectors served, with their classes
 *   POST /v1/detectors/<name>/detect       image bytes, or multipart with several files
 *        ?threshold=0.25&max_detections=100 → { model, width, height, detections: [{ label, score, box }] }
 *
 * Inputs go through the same reader and limits as predictions (body size, pixels from the header
 * before decoding, files per request), and at most `maxConcurrent` requests run at once (then 429).
 */
import type { FastifyInstance } from 'fastify';
import type { Detector } from '../detector/detector.js';
import { HttpError, readRequestInputs, type InputLimits } from './inputs.js';
import type { ServerMetrics } from './metrics.js';

export interface DetectorToServe {
  /** The name in URLs: letters, digits, `.`, `_`, `-`. */
  name: string;
  detector: Detector;
}

export function registerDetectionRoutes(app: FastifyInstance, detectors: readonly DetectorToServe[], limits: InputLimits & { maxConcurrent: number }, metrics: ServerMetrics): void {
  const byName = new Map(detectors.map((d) => [d.name, d]));
  let running = 0;
  app.get('/v1/detectors', async () => ({ detectors: detectors.map(({ name, detector }) => ({ name, reference: detector.reference, layout: detector.layout.kind, classes: detector.classes })) }));
  app.post<{ Params: { name: string }; Querystring: { threshold?: string; max_detections?: string } }>(
    '/v1/detectors/:name/detect',
    {
      // Before the body is read, as for predictions: refusals cost no upload.
      onRequest: async (request, reply) => {
        const served = byName.get(request.params.name);
        const admitted = running < limits.maxConcurrent;
        if (admitted) running++;
        reply.raw.once('close', () => {
          if (admitted) running--;
          metrics.requests.inc({ model: served?.name ?? '', status: String(reply.statusCode) });
        });
        if (!served) throw new HttpError(404, 'unknown_model', `no detector named "${request.params.name.slice(0, 100)}"; GET /v1/detectors lists them`);
        if (!admitted) {
          reply.header('retry-after', '1');
          throw new HttpError(429, 'too_busy', `${running} requests in flight, the limit is ${limits.maxConcurrent}; retry shortly`, 'too_busy');
        }
      },
    },
    async (request) => {
      const { name, detector } = byName.get(request.params.name)!;
      const { threshold, maxDetections } = parseDetectionQuery(request.query, 100, 1000);
      const { inputs, names, batch } = await readRequestInputs(request, 'image', limits);
      const results = await detector.detectMany(inputs, { threshold, maxDetections });
      const shaped = results.map((r) => ({ width: r.width, height: r.height, detections: r.detections }));
      return batch ? { model: name, results: shaped.map((r, i) => ({ input: names[i], ...r })) } : { model: name, ...shaped[0] };
    },
  );
}

/** `threshold` and `max_detections` as detect and explain take them (explain: fewer boxes, each costs a backward pass). */
export function parseDetectionQuery(query: { threshold?: string; max_detections?: string }, defaultMax: number, maxMax: number): { threshold: number; maxDetections: number } {
  const threshold = parseNumber(query.threshold, 'threshold', 0.25, 0, 1);
  const maxDetections = parseNumber(query.max_detections, 'max_detections', defaultMax, 1, maxMax);
  if (!Number.isInteger(maxDetections)) throw new HttpError(400, 'bad_max_detections', 'max_detections must be an integer');
  return { threshold, maxDetections };
}

function parseNumber(value: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!(n >= min && n <= max)) throw new HttpError(400, `bad_${name}`, `${name} must be a number from ${min} to ${max}, got "${value.slice(0, 20)}"`);
  return n;
}
