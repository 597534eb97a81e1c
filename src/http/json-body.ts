/**
 * Request bodies are JSON whatever Content-Type says (clients differ); prototype-poisoning
 * keys are refused; an empty body parses as undefined so each route decides if it needs one.
 */
import type { FastifyInstance } from 'fastify';
import secureJson from 'secure-json-parse';
import { notJson } from '../core/errors.js';

export function registerJsonBodyParser(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body: Buffer, done) => {
    if (body.length === 0) {
      done(null, undefined);
      return;
    }
    try {
      done(
        null,
        secureJson.parse(body.toString('utf8'), undefined, {
          protoAction: 'error',
          constructorAction: 'error',
        }),
      );
    } catch {
      done(notJson('Content not JSON'), undefined);
    }
  });
}
