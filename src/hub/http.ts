import { setTimeout as sleep } from 'node:timers/promises';
import { HeadstartError, messageOf } from '../util/errors.js';
import type { Reporter } from '../util/progress.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_RETRIES = 5;
const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 15_000;

/** What a failed request was about, so its error can say what the user can do. */
export interface RequestContext {
  repo: string;
  revision: string;
  /** The file, for downloads. */
  path?: string;
  /** Whether a token was sent: a 401 then means it was rejected rather than missing. */
  tokenSent: boolean;
}

/** An answer from the Hub that is not a success; `retryable` for 5xx and 429. */
export class HubStatusError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string | undefined,
    readonly retryable: boolean,
    readonly userError: HeadstartError,
  ) {
    super(userError.message);
  }
}

/**
 * Turns a Hub error answer into a message a user can act on. The Hub tells the cases apart with the
 * `X-Error-Code` header (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo); it also answers 401
 * for repositories that do not exist when no token is sent, so as not to reveal private ones.
 * Never includes the token or request headers.
 */
export function hubError(status: number, headers: Headers, context: RequestContext): HubStatusError {
  const code = headers.get('x-error-code') ?? undefined;
  const { repo, revision, path } = context;
  const where = `${repo}@${revision}`;
  const tokenHint = 'pass a token with read access (HF_TOKEN or --token)';
  let error: HeadstartError;
  if (code === 'GatedRepo') {
    error = new HeadstartError('network', `access to the gated repository ${repo} is not granted (HTTP ${status}): accept its conditions on the Hub, then ${tokenHint}`);
  } else if (code === 'RevisionNotFound') {
    error = new HeadstartError('usage', `revision not found: ${where} (HTTP ${status}): no such branch, tag or commit`);
  } else if (code === 'EntryNotFound' || (status === 404 && path && !code)) {
    error = new HeadstartError('usage', `file not found in ${where}: ${path ?? '(listing)'} (HTTP ${status})`);
  } else if (code === 'RepoNotFound' || status === 404) {
    error = new HeadstartError(
      'usage',
      `repository not found: ${repo}${code ? '' : ` (or revision "${revision}")`} (HTTP ${status})${
        context.tokenSent ? '; if it is private, the token may not grant access to it' : `; if it is private or gated, ${tokenHint}`
      }`,
    );
  } else if (status === 401 || status === 403) {
    error = context.tokenSent
      ? new HeadstartError('network', `token rejected for ${repo} (HTTP ${status}): check that it is valid and grants read access to this repository`)
      : new HeadstartError('network', `authentication required for ${repo} (HTTP ${status}): ${tokenHint}`);
  } else {
    error = new HeadstartError('network', `the Hub answered HTTP ${status} for ${path ? `${path} in ${where}` : where}`);
  }
  return new HubStatusError(status, code, status >= 500 || status === 429, error);
}

/** A failure known to be worth another attempt (e.g. a resume the server answered inconsistently). */
export class TransientError extends Error {}

export function normalizeEtag(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  return value.trim().replace(/^W\//i, '').replace(/^"(.*)"$/, '$1');
}

/** Connection-level failures worth another try: resets, refusals, timeouts, a body cut short. */
export function isTransientNetworkError(error: unknown): boolean {
  if (error instanceof HubStatusError || error instanceof HeadstartError) return false;
  if (!(error instanceof Error)) return false;
  if (error instanceof TransientError) return true;
  if (isUnreachable(error)) return false;
  const codes = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH']);
  for (let e: any = error; e; e = e.cause) {
    if (codes.has(e.code) || (typeof e.code === 'string' && e.code.startsWith('UND_ERR_'))) return true;
    if (e.name === 'AbortError' || e.name === 'TimeoutError') return true;
  }
  // undici reports a dropped connection as `TypeError: fetch failed` / `terminated`.
  return error instanceof TypeError && /fetch failed|terminated|other side closed/i.test(error.message);
}

export interface RetryOptions {
  retries: number;
  reporter: Reporter;
  label: string;
}

/**
 * Runs `attempt` again after 5xx/429 answers and dropped connections, waiting 250 ms, 500 ms, 1 s, …
 * (with jitter) in between; 4xx answers and anything else fail at once. Every failure that is given up
 * on becomes a HeadstartError.
 */
export async function withRetries<T>(attempt: (attemptNumber: number) => Promise<T>, options: RetryOptions): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      const retryable = error instanceof HubStatusError ? error.retryable : isTransientNetworkError(error);
      if (!retryable || n >= options.retries) throw toUserError(error, options.label, n);
      const delay = Math.min(FIRST_BACKOFF_MS * 2 ** n, MAX_BACKOFF_MS) * (0.75 + Math.random() * 0.5);
      options.reporter.warn(`${options.label}: ${reason(error)}; retrying in ${(delay / 1000).toFixed(1)}s (${n + 1}/${options.retries})`);
      await sleep(delay);
    }
  }
}

/** Whether a failure given up on was the connection (refused, reset, no such host), not an answer from the Hub. */
export function isConnectionFailure(error: unknown): boolean {
  const cause = error instanceof HeadstartError ? error.cause : error;
  return isTransientNetworkError(cause) || isUnreachable(cause);
}

/** A host that does not resolve: not worth retrying, but the same advice applies. */
function isUnreachable(error: unknown): boolean {
  for (let e: any = error; e; e = e.cause) if (e.code === 'ENOTFOUND') return true;
  return false;
}

function reason(error: unknown): string {
  if (error instanceof HubStatusError) return `HTTP ${error.status}`;
  // undici's own message is just "fetch failed"; what happened is in the cause.
  const details: string[] = [];
  for (let e: any = (error as any)?.cause; e; e = e.cause) details.push(e.code && !String(e.message).includes(e.code) ? `${e.message} (${e.code})` : String(e.message));
  return [messageOf(error), ...details].join(': ');
}

function toUserError(error: unknown, label: string, attempts: number): Error {
  if (error instanceof HubStatusError) {
    if (!error.retryable || attempts === 0) return error.userError;
    return new HeadstartError(error.userError.kind, `${error.userError.message} (gave up after ${attempts + 1} attempts)`);
  }
  if (error instanceof HeadstartError) return error;
  if (isTransientNetworkError(error) || isUnreachable(error)) {
    return new HeadstartError(
      'network',
      `${label}: ${reason(error)}${attempts > 0 ? ` (gave up after ${attempts + 1} attempts)` : ''}; check the connection and HF_ENDPOINT, or work from the cache with --offline (HF_HUB_OFFLINE=1)`,
      { cause: error },
    );
  }
  return error instanceof Error ? error : new Error(String(error));
}
