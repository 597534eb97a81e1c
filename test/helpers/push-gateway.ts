/**
 * A push gateway in the test process: it answers `POST /_matrix/push/v1/notify`, checks each
 * body against the Push Gateway API's request schema (the spec's push_notifier.yaml, compiled
 * with Ajv), and keeps what it received. It can fail on purpose, reject pushkeys, be stopped
 * (connections refused) and started again on the same port.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';
import { SPEC_ROOT } from './requirements.js';

export const NOTIFY_PATH = '/_matrix/push/v1/notify';

export interface Notification {
  event_id?: string;
  room_id?: string;
  type?: string;
  sender?: string;
  sender_display_name?: string;
  room_name?: string;
  room_alias?: string;
  user_is_target?: boolean;
  prio?: 'high' | 'low';
  content?: Record<string, unknown>;
  counts?: { unread?: number; missed_calls?: number };
  devices: Array<{
    app_id: string;
    pushkey: string;
    pushkey_ts?: number;
    data?: Record<string, unknown>;
    tweaks?: Record<string, unknown>;
  }>;
}

let validator: ValidateFunction | null = null;

/** The spec's request schema for `/notify` (null when the spec is not beside the clone). */
function notifySchema(): ValidateFunction | null {
  if (validator) return validator;
  let text: string;
  try {
    text = readFileSync(path.join(SPEC_ROOT, 'data/api/push-gateway/push_notifier.yaml'), 'utf8');
  } catch {
    return null;
  }
  const doc = parseYaml(text) as {
    paths: Record<
      string,
      { post: { requestBody: { content: Record<string, { schema: object }> } } }
    >;
  };
  const schema = doc.paths['/notify']?.post.requestBody.content['application/json']?.schema;
  if (!schema) throw new Error('push_notifier.yaml has no /notify request schema');
  const ajv = new Ajv2020({ strict: false, allErrors: true, logger: false });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  validator = ajv.compile(schema);
  return validator;
}

export class TestPushGateway {
  /** Every notification received (answered 200 or not), in order. */
  readonly received: Notification[] = [];
  /** Bodies that did not match the spec's schema, with the errors. */
  readonly invalid: string[] = [];
  /** Answer with this status instead of 200 for the next `failures` requests. */
  failWith: number | null = null;
  failures = 0;
  /** Pushkeys answered as `rejected`. */
  readonly rejecting = new Set<string>();
  private server: Server | null = null;
  private port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}${NOTIFY_PATH}`;
  }

  /** Notifications with a status of 200 (delivered). */
  readonly delivered: Notification[] = [];

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const reply = (status: number, body: unknown) => {
          res.writeHead(status, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        if (req.method !== 'POST' || req.url !== NOTIFY_PATH)
          return reply(404, { errcode: 'M_UNRECOGNIZED' });
        let body: { notification: Notification };
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
        } catch {
          this.invalid.push('not JSON');
          return reply(400, {});
        }
        const validate = notifySchema();
        if (validate && !validate(body)) this.invalid.push(JSON.stringify(validate.errors));
        if (req.headers['content-type'] !== 'application/json')
          this.invalid.push(`content-type ${req.headers['content-type']}`);
        this.received.push(body.notification);
        if (this.failWith !== null && this.failures > 0) {
          this.failures--;
          return reply(this.failWith, {});
        }
        this.delivered.push(body.notification);
        const rejected = body.notification.devices
          .map((d) => d.pushkey)
          .filter((key) => this.rejecting.has(key));
        reply(200, { rejected });
      });
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
