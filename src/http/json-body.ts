/**
 * Request bodies are JSON whatever Content-Type says (clients differ); prototype-poisoning
 * keys are refused; an empty body parses as undefined so each route decides if it needs one.
 */
import type { FastifyInstance } from 'fastify';
import secureJson from 'secure-json-parse';
import { badJson, notJson } from '../core/errors.js';

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

export function registerJsonBodyParser(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body: Buffer, done) => {
    if (body.length === 0) {
      done(null, undefined);
      return;
    }
    const text = body.toString('utf8');
    try {
      done(
        null,
        secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' }),
      );
    } catch {
      // Valid JSON refused for a "__proto__" or "constructor.prototype" key is M_BAD_JSON.
      done(
        isJson(text)
          ? badJson('Request body may not contain "__proto__" or "constructor.prototype"')
          : notJson('Content not JSON'),
        undefined,
      );
    }
  });
}
