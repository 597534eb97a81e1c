/**
 * Application-service test peers: registration files written to a temporary directory, and
 * a bridge — a real HTTP server on a random port — that records the transactions Commons
 * pushes to it and can be told to fail or be stopped and started again on the same port.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';

export interface RegistrationSpec {
  id: string;
  url: string | null;
  as_token: string;
  hs_token: string;
  sender_localpart: string;
  namespaces: {
    users?: { exclusive: boolean; regex: string }[];
    aliases?: { exclusive: boolean; regex: string }[];
    rooms?: { exclusive: boolean; regex: string }[];
  };
  rate_limited?: boolean;
  [key: string]: unknown;
}

/** Writes each registration to a YAML file; returns the value of COMMONS_APP_SERVICES_CONFIG_FILES. */
export function writeRegistrations(registrations: RegistrationSpec[]): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'commons-as-'));
  return registrations
    .map((registration) => {
      const file = path.join(dir, `${registration.id}.yaml`);
      writeFileSync(file, stringify(registration));
      return file;
    })
    .join(',');
}

export interface ReceivedTxn {
  txnId: string;
  authorization: string | undefined;
  events: {
    event_id: string;
    type: string;
    room_id: string;
    sender: string;
    content: Record<string, unknown>;
  }[];
  body: Record<string, unknown>;
}

export interface BridgeRequest {
  method: string;
  url: string;
  authorization: string | undefined;
  body: unknown;
}

/** An answer of the bridge's own to a request other than a transaction (undefined: 404). */
export type BridgeAnswer = (
  request: BridgeRequest,
) =>
  | Promise<{ status: number; body: unknown } | undefined>
  | { status: number; body: unknown }
  | undefined;

export class TestBridge {
  readonly transactions: ReceivedTxn[] = [];
  /** Every request other than a transaction, in order. */
  readonly requests: BridgeRequest[] = [];
  /** How the bridge answers queries, pings and third-party lookups. */
  answer: BridgeAnswer = () => undefined;
  /** Answer with this status instead of 200 (e.g. 500 to make Commons retry). */
  failWith: number | null = null;
  /** Requests answered with `failWith`. */
  failures = 0;
  /** Answer a transaction (recorded at once) only after this long. */
  delayMs = 0;
  /** While true, transactions are recorded at once and answered only by `release()`. */
  holding = false;
  private held: (() => void)[] = [];
  private server: Server | null = null;
  private port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Every event received, in order, counting a transaction ID seen twice once. */
  get events(): ReceivedTxn['events'] {
    const seen = new Set<string>();
    return this.transactions
      .filter((t) => (seen.has(t.txnId) ? false : (seen.add(t.txnId), true)))
      .flatMap((t) => t.events);
  }

  /** Transactions received and not answered yet (while `holding`). */
  get heldCount(): number {
    return this.held.length;
  }

  /** Stops holding and answers every held transaction. */
  release(): void {
    this.holding = false;
    for (const answer of this.held.splice(0)) answer();
  }

  async start(): Promise<void> {
    this.server = createServer((request, response) => {
      let text = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => (text += chunk));
      request.on('end', () => {
        const match = /^\/_matrix\/app\/v1\/transactions\/([^/?]+)/.exec(request.url ?? '');
        if (this.failWith !== null) {
          this.failures++;
          response.writeHead(this.failWith, { 'Content-Type': 'application/json' });
          response.end('{"errcode":"M_UNKNOWN","error":"down"}');
          return;
        }
        if (!(request.method === 'PUT' && match)) {
          const asked: BridgeRequest = {
            method: request.method ?? 'GET',
            url: request.url ?? '',
            authorization: request.headers.authorization,
            body: text === '' ? undefined : (JSON.parse(text) as unknown),
          };
          this.requests.push(asked);
          void Promise.resolve(this.answer(asked)).then((answer) => {
            response.writeHead(answer?.status ?? 404, { 'Content-Type': 'application/json' });
            response.end(JSON.stringify(answer?.body ?? { errcode: 'M_UNRECOGNIZED', error: '' }));
          });
          return;
        }
        if (request.method === 'PUT' && match) {
          const body = JSON.parse(text) as Record<string, unknown>;
          this.transactions.push({
            txnId: decodeURIComponent(match[1] as string),
            authorization: request.headers.authorization,
            events: (body.events ?? []) as ReceivedTxn['events'],
            body,
          });
        }
        const answer = () => {
          response.writeHead(200, { 'Content-Type': 'application/json' });
          response.end('{}');
        };
        if (this.holding) this.held.push(answer);
        else if (this.delayMs > 0) setTimeout(answer, this.delayMs);
        else answer();
      });
    });
    const server = this.server;
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
