/**
 * Schema validation: bodies are checked strictly (no type coercion: a number is not a
 * string), query strings and path parameters are coerced from text as Fastify usually does.
 * A body schema wrapped in `Type.Optional` also accepts no body at all (the route reads
 * `request.body` as possibly undefined): the endpoints whose every field is optional, where
 * clients send nothing (Synapse takes an empty body there too).
 */
import type { FastifyInstance, FastifySchema } from 'fastify';
import { Ajv, type Options, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { Type } from 'typebox';

function makeAjv(options: Options): Ajv {
  const ajv = new Ajv({
    allErrors: false,
    strict: false,
    useDefaults: true,
    removeAdditional: false,
    ...options,
  });
  addFormats.default(ajv);
  return ajv;
}

interface DataContext {
  parentData?: { body?: unknown };
}

/**
 * `validate`, except that an absent body passes. Fastify hands an absent body over as null,
 * like a body of `null`; it names the request as the parent when the validator has a
 * `schemaEnv` (as Ajv's have), which tells the two apart.
 */
function absentOr(validate: ValidateFunction): ValidateFunction {
  const check = (data: unknown, context?: DataContext) =>
    context?.parentData !== undefined && context.parentData.body === undefined
      ? true
      : validate(data, context as Parameters<ValidateFunction>[1]);
  Object.defineProperty(check, 'errors', { get: () => validate.errors });
  Object.defineProperty(check, 'schemaEnv', { value: validate.schemaEnv });
  return check as ValidateFunction;
}

export function registerValidators(app: FastifyInstance): void {
  const strict = makeAjv({ coerceTypes: false });
  const coercing = makeAjv({ coerceTypes: 'array' });
  app.setValidatorCompiler(({ schema, httpPart }) => {
    if (httpPart !== 'body') return coercing.compile(schema as FastifySchema & object);
    const validate = strict.compile(schema as FastifySchema & object);
    return Type.IsOptional(schema) ? absentOr(validate) : validate;
  });
}
