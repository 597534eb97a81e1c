/** Assertions and names shared by the HTTP tests. */
import assert from 'node:assert/strict';
import { assertMatchesSpec } from './spec-contract.js';

/** The body of a Matrix error, with the extra fields some errors carry. */
export interface ErrorBody {
  errcode: string;
  error: string;
  soft_logout?: boolean;
  retry_after_ms?: number;
}

/** Where in the spec an error response is defined, to check its body against. */
export interface SpecOperation {
  file: string;
  method: string;
  path: string;
}

/**
 * Asserts a Matrix error answer: the status, the errcode and a readable `error`; with
 * `spec`, also that the body matches the spec's response for that status.
 */
export function expectError(
  response: { status: number; body: unknown },
  status: number,
  errcode: string,
  spec?: SpecOperation,
): ErrorBody {
  assert.equal(response.status, status, JSON.stringify(response.body));
  const body = response.body as ErrorBody;
  assert.equal(body.errcode, errcode, JSON.stringify(body));
  assert.equal(typeof body.error, 'string');
  if (spec) assertMatchesSpec(spec.file, spec.method, spec.path, status, body);
  return body;
}

let counter = 0;

/** A name no other test in this run uses: `prefix` + process id + a counter. */
export const uniqueName = (prefix: string): string => `${prefix}${process.pid}x${++counter}`;
