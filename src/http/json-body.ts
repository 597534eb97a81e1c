/**
 * Request bodies are JSON whatever Content-Type says (clients differ); prototype-poisoning
 * keys are refused, and so is JSON nested deeper than MAX_JSON_DEPTH (400 M_BAD_JSON, see
 * core/json-depth.ts); an empty body parses as undefined so each route decides if it needs
 * one. Unknown paths never get here (errors.ts answers them before the body is read).
 */
import type { FastifyInstance } from 'fastify';
import secureJson from 'secure-json-parse';
import { badJson, notJson } from '../core/errors.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../core/json-depth.js';

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
    let parsed: unknown;
    try {
      parsed = secureJson.parse(text, undefined, {
        protoAction: 'error',
        constructorAction: 'error',
      });
    } catch {
      // Valid JSON refused for a "__proto__" or "constructor.prototype" key is M_BAD_JSON.
      done(
        isJson(text)
          ? badJson('Request body may not contain "__proto__" or "constructor.prototype"')
          : notJson('Content not JSON'),
        undefined,
      );
      return;
    }
    if (nestsDeeperThan(parsed)) {
      done(badJson(`JSON may not nest more than ${MAX_JSON_DEPTH} levels deep`), undefined);
      return;
    }
    done(null, parsed);
  });
}
