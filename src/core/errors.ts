/**
 * The one error type of Commons. Services throw it; the HTTP error handler turns it into
 * the spec's `{errcode, error, ...extra}` body with its status.
 */
export type ErrorExtra = Record<string, unknown>;

export class MatrixError extends Error {
  readonly status: number;
  readonly errcode: string;
  readonly extra: ErrorExtra;
  /** Headers the HTTP layer adds to the response (for example `Retry-After`). */
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    errcode: string,
    message: string,
    extra: ErrorExtra = {},
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'MatrixError';
    this.status = status;
    this.errcode = errcode;
    this.extra = extra;
    this.headers = headers;
  }

  toJSON(): Record<string, unknown> {
    return { errcode: this.errcode, error: this.message, ...this.extra };
  }
}

export const forbidden = (message: string, extra?: ErrorExtra): MatrixError =>
  new MatrixError(403, 'M_FORBIDDEN', message, extra);
export const notFound = (message: string): MatrixError =>
  new MatrixError(404, 'M_NOT_FOUND', message);
export const badJson = (message: string): MatrixError =>
  new MatrixError(400, 'M_BAD_JSON', message);
export const notJson = (message: string): MatrixError =>
  new MatrixError(400, 'M_NOT_JSON', message);
export const missingParam = (message: string): MatrixError =>
  new MatrixError(400, 'M_MISSING_PARAM', message);
export const invalidParam = (message: string): MatrixError =>
  new MatrixError(400, 'M_INVALID_PARAM', message);
export const unrecognized = (message: string, status = 404): MatrixError =>
  new MatrixError(status, 'M_UNRECOGNIZED', message);
export const missingToken = (): MatrixError =>
  new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access token');
export const unknownToken = (softLogout = false): MatrixError =>
  new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Unrecognised access token', {
    soft_logout: softLogout,
  });
export const limitExceeded = (retryAfterMs: number): MatrixError =>
  new MatrixError(
    429,
    'M_LIMIT_EXCEEDED',
    'Too many requests',
    { retry_after_ms: retryAfterMs },
    { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) },
  );
export const tooLarge = (message: string): MatrixError =>
  new MatrixError(413, 'M_TOO_LARGE', message);
export const unknown = (message: string, status = 400): MatrixError =>
  new MatrixError(status, 'M_UNKNOWN', message);
