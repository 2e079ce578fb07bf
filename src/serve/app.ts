/**
 * The Fastify stack `serve` and `studio` share: body and multipart limits, raw-body parsers for
 * image and audio bytes, and one JSON error format (`{error: {status, code, message}}`) in which
 * internals are never leaked. Each server adds its own routes on top.
 */
import multipart from '@fastify/multipart';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { HeadstartError } from '../util/errors.js';
import { HttpError, mediaType, type InputLimits } from './inputs.js';
import type { RejectionReason } from './metrics.js';

export interface HttpAppOptions {
  limits: InputLimits;
  /** Fastify's logger: pino options, `false` for none. */
  logger: FastifyServerOptions['logger'];
  /** Called for every refused (4xx) request, with the reason (serve counts them). */
  onRejected?: (reason: RejectionReason) => void;
  /** Multipart files per request (default `limits.maxBatchInputs`). */
  maxFiles?: number;
}

export async function createHttpApp(options: HttpAppOptions): Promise<FastifyInstance> {
  const { limits } = options;
  const maxFiles = options.maxFiles ?? limits.maxBatchInputs;
  const app = Fastify({
    logger: options.logger,
    bodyLimit: limits.maxBodyBytes,
    // Clients that stall mid-upload must not hold a slot for ever.
    requestTimeout: 60_000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });
  await app.register(multipart, {
    limits: { fileSize: limits.maxBodyBytes, files: maxFiles, fields: 16, parts: maxFiles + 16, fieldSize: 64 * 1024, headerPairs: 100 },
  });
  const rawBody = (_request: FastifyRequest, body: Buffer, done: (error: Error | null, body?: Buffer) => void) => done(null, body);
  for (const type of [/^image\/[\w.+-]+$/, /^audio\/[\w.+-]+$/, 'application/octet-stream']) app.addContentTypeParser(type, { parseAs: 'buffer' }, rawBody);

  app.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
    const { status, code, message, reason } = describeError(error, request, limits, maxFiles);
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    else options.onRejected?.(reason);
    return reply.status(status).send({ error: { status, code, message } });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: { status: 404, code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` } }),
  );
  return app;
}

/** Every failure as status, stable code, message and metrics reason; internals are not leaked. */
export function describeError(
  error: FastifyError | HttpError | HeadstartError,
  request: FastifyRequest,
  limits: InputLimits,
  maxFiles = limits.maxBatchInputs,
): { status: number; code: string; message: string; reason: RejectionReason } {
  if (error instanceof HttpError) return { status: error.statusCode, code: error.code, message: error.message, reason: error.reason };
  // A user's bad data or bad settings are the client's to fix; a broken install is ours.
  if (error instanceof HeadstartError && (error.kind === 'data' || error.kind === 'usage')) {
    return { status: 400, code: error.kind === 'data' ? 'bad_data' : 'bad_request', message: error.message, reason: 'bad_request' };
  }
  const megabytes = `${(limits.maxBodyBytes / 1024 / 1024).toFixed(1)} MB`;
  const fastifyError = error as FastifyError;
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
      return { status: 413, code: 'body_too_large', message: `the body (or a file in it) is larger than the ${megabytes} limit`, reason: 'body_too_large' };
    case 'FST_FILES_LIMIT':
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return { status: 413, code: 'too_many_inputs', message: `more than ${maxFiles} files (or too many form fields) in one request`, reason: 'body_too_large' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, code: 'unsupported_media_type', message: `unsupported content type "${mediaType(request) || 'none'}"`, reason: 'content_type' };
  }
  const status = typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500 ? fastifyError.statusCode : 500;
  if (status === 500) return { status, code: 'internal_error', message: 'internal error (logged on the server)', reason: 'bad_request' };
  return { status, code: (fastifyError.code ?? 'bad_request').toLowerCase(), message: fastifyError.message, reason: 'bad_request' };
}
