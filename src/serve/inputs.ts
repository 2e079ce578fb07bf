/**
 * Turning a prediction request into model inputs, with every limit checked before any decoding:
 * body size (Fastify / multipart limits), inputs per request, image pixels (read from the header, so
 * a decompression bomb is refused before a single pixel is allocated), text length, and content
 * types. Inputs are bytes or strings held in memory — nothing from a request names a file.
 */
import type { FastifyRequest } from 'fastify';
import type { Modality } from '../backbones/backbone.js';
import { readImageHeader } from '../data/image-decode.js';
import type { RejectionReason } from './metrics.js';

export interface InputLimits {
  /** Largest body: raw bytes, JSON, or all the files of a multipart body together. */
  maxBodyBytes: number;
  /** Largest image, in pixels, judged from its header. */
  maxPixels: number;
  /** Longest text, in characters. */
  maxTextLength: number;
  /** Most inputs in one batch request. */
  maxBatchInputs: number;
}

/** A refusal with its HTTP status, a stable code for clients and a reason for the metrics. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly reason: RejectionReason = 'bad_request',
  ) {
    super(message);
  }
}

export interface RequestInputs {
  inputs: (Uint8Array | string)[];
  /** For batch answers: the file name or index of each input. */
  names: string[];
  /** Multipart or a JSON list: answered with one result per input. */
  batch: boolean;
}

const ACCEPTED: Record<Modality, string> = {
  image: 'image bytes (image/*, application/octet-stream) or multipart/form-data with one or more files',
  audio: 'WAV bytes (audio/wav, application/octet-stream) or multipart/form-data with one or more files',
  text: 'application/json {"text": "…"} or {"texts": ["…", …]}, or text/plain',
};

export function mediaType(request: FastifyRequest): string {
  return (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

export async function readRequestInputs(request: FastifyRequest, modality: Modality, limits: InputLimits): Promise<RequestInputs> {
  const type = mediaType(request);
  const wrongType = () =>
    new HttpError(415, 'unsupported_media_type', `${modality === 'text' ? 'a' : 'an'} ${modality} model takes ${ACCEPTED[modality]}; got ${type || 'no content type'}`, 'content_type');

  let read: RequestInputs;
  if (type === 'multipart/form-data') {
    if (modality === 'text') throw wrongType();
    read = await readMultipart(request, limits);
  } else if (modality === 'text') {
    if (type === 'application/json') read = readJsonTexts(request.body);
    else if (type === 'text/plain' && typeof request.body === 'string') read = { inputs: [request.body], names: ['0'], batch: false };
    else throw wrongType();
  } else {
    const family = modality === 'image' ? 'image/' : 'audio/';
    if (!(type.startsWith(family) || type === 'application/octet-stream') || !(request.body instanceof Uint8Array)) throw wrongType();
    read = { inputs: [request.body], names: ['0'], batch: false };
  }

  if (read.inputs.length === 0) throw new HttpError(400, 'no_input', `the request holds no input; send ${ACCEPTED[modality]}`);
  if (read.inputs.length > limits.maxBatchInputs) {
    throw new HttpError(413, 'too_many_inputs', `${read.inputs.length} inputs in one request; the limit is ${limits.maxBatchInputs}`, 'body_too_large');
  }
  for (const [i, input] of read.inputs.entries()) {
    const where = read.batch ? ` (input ${read.names[i]})` : '';
    if (typeof input === 'string') {
      if (input.length > limits.maxTextLength) {
        throw new HttpError(413, 'text_too_long', `text of ${input.length} characters${where}; the limit is ${limits.maxTextLength}`, 'text_too_long');
      }
    } else if (input.length === 0) {
      throw new HttpError(400, 'empty_input', `the body is empty${where}; send the file's bytes`, 'undecodable');
    } else if (modality === 'image') {
      await checkImageHeader(input, limits.maxPixels, where);
    }
  }
  return read;
}

/** The files of a multipart body, held in memory; all of them together within the body limit. */
async function readMultipart(request: FastifyRequest, limits: InputLimits): Promise<RequestInputs> {
  const inputs: Uint8Array[] = [];
  const names: string[] = [];
  let total = 0;
  for await (const part of request.parts()) {
    if (part.type !== 'file') continue;
    if (inputs.length >= limits.maxBatchInputs) {
      throw new HttpError(413, 'too_many_inputs', `more than ${limits.maxBatchInputs} files in one request`, 'body_too_large');
    }
    const chunks: Buffer[] = [];
    for await (const chunk of part.file as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limits.maxBodyBytes) {
        throw new HttpError(413, 'body_too_large', `the files add up to more than the ${(limits.maxBodyBytes / 1024 / 1024).toFixed(1)} MB limit`, 'body_too_large');
      }
      chunks.push(chunk);
    }
    inputs.push(Buffer.concat(chunks));
    names.push(part.filename || part.fieldname || String(inputs.length - 1));
  }
  return { inputs, names, batch: true };
}

function readJsonTexts(body: unknown): RequestInputs {
  const shape = 'expected {"text": "…"} or {"texts": ["…", …]}';
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'bad_json', shape);
  const { text, texts } = body as { text?: unknown; texts?: unknown };
  if (typeof text === 'string') return { inputs: [text], names: ['0'], batch: false };
  if (Array.isArray(texts) && texts.every((t) => typeof t === 'string')) return { inputs: texts, names: texts.map((_, i) => String(i)), batch: true };
  throw new HttpError(400, 'bad_json', shape);
}

/** Reads only the image header: a 20000×20000 PNG of a few bytes is refused here, never decoded. */
async function checkImageHeader(bytes: Uint8Array, maxPixels: number, where: string): Promise<void> {
  let width: number | undefined;
  let height: number | undefined;
  try {
    ({ width, height } = await readImageHeader(bytes));
  } catch (error) {
    const detail = (error instanceof Error ? error.message : String(error)).replace(/^Input (buffer|file) /, '');
    throw new HttpError(400, 'undecodable_image', `not a readable image${where}: ${detail}`, 'undecodable');
  }
  if (!width || !height) throw new HttpError(400, 'undecodable_image', `the image has no size${where}`, 'undecodable');
  if (width * height > maxPixels) {
    throw new HttpError(
      413,
      'too_many_pixels',
      `the image is ${width}×${height} (${((width * height) / 1e6).toFixed(1)} MP)${where}; the limit is ${(maxPixels / 1e6).toFixed(1)} MP`,
      'too_many_pixels',
    );
  }
}
