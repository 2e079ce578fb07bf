/**
 * Errors a user can act on: what went wrong, with which file, and what was expected.
 * The CLI maps `kind` to a stable exit code so scripts can trust it.
 */
export type ErrorKind = 'usage' | 'data' | 'model' | 'network' | 'internal';

export const EXIT_CODES: Record<ErrorKind, number> = {
  internal: 1,
  usage: 2,
  data: 3,
  model: 4,
  network: 5,
};

export class HeadstartError extends Error {
  readonly kind: ErrorKind;
  readonly file?: string;

  constructor(kind: ErrorKind, message: string, options: { file?: string; cause?: unknown } = {}) {
    super(options.file ? `${options.file}: ${message}` : message, { cause: options.cause });
    this.name = 'HeadstartError';
    this.kind = kind;
    this.file = options.file;
  }
}

export const usageError = (message: string) => new HeadstartError('usage', message);
export const dataError = (message: string, file?: string, cause?: unknown) =>
  new HeadstartError('data', message, { file, cause });
export const modelError = (message: string, file?: string, cause?: unknown) =>
  new HeadstartError('model', message, { file, cause });

/** The message of anything thrown, without a stack. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
