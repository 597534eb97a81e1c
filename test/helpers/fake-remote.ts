/**
 * A "remote server" for federation tests: an HTTPS listener (certificate from the test CA) on
 * 127.0.0.1:PORT publishing its own ed25519 key, serving the events it holds (/event,
 * /event_auth, /state_ids, /get_missing_events) and recording what it is sent; and a client
 * that signs its requests to a Commons with X-Matrix, as another homeserver would.
 */
import { createServer, type Server } from 'node:https';
import type { Pdu, RoomVersionId } from '../../src/core/pdu.js';
import { ownServerKeys } from '../../src/core/server-keys.js';
import { generateSigningKey, type SigningKey } from '../../src/core/signing.js';
import { xMatrixHeader } from '../../src/core/x-matrix.js';
import { freePort, httpsJson, type TestCa } from './federation.js';
import { remoteEvent, type RemoteEventSpec } from './remote-events.js';

export interface FakeRemote {
  serverName: string;
  key: SigningKey;
  /** Events it holds (served on /event), by ID. */
  events: Map<string, Pdu>;
  /** The state after each event it holds (served on /state_ids), by event ID. */
  stateAfter: Map<string, string[]>;
  /** Transactions it was sent. */
  received: { pdus: Pdu[]; edus: unknown[] }[];
  /**
   * Whether /get_missing_events answers from the events it holds (walking back from
   * `latest_events` to `earliest_events`, nearest first, `limit` at most); otherwise (the
   * default) it answers no events. `missingEventsAsked` counts the requests.
   */
  serveMissingEvents: boolean;
  missingEventsAsked: number;
  /**
   * /backfill answers from the events it holds: those named by `v` and their ancestors
   * through prev events, nearest first, `limit` at most, then these extra PDUs (forged ones,
   * for tests). `backfillAsked` counts the requests.
   */
  backfillExtra: unknown[];
  backfillAsked: number;
  /** Makes (and holds) an event signed by this server. */
  event(version: RoomVersionId, spec: RemoteEventSpec): { eventId: string; pdu: Pdu };
  /**
   * A request to `destination` signed as this server; sent to `address` (host:port) when
   * given, for a destination whose name does not resolve to where it listens.
   */
  request(
    destination: string,
    method: string,
    path: string,
    body?: unknown,
    address?: string,
    // Answers of many shapes, read field by field by the tests.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
  ): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function startFakeRemote(
  ca: TestCa,
  /** The host of its server name (the certificate names 127.0.0.1 and localhost). */
  host = '127.0.0.1',
): Promise<FakeRemote> {
  const port = await freePort();
  const serverName = `${host}:${port}`;
  const key = generateSigningKey();
  const events = new Map<string, Pdu>();
  const stateAfter = new Map<string, string[]>();
  const received: FakeRemote['received'] = [];
  const authChain = (ids: readonly string[]): Pdu[] => {
    const seen = new Set<string>();
    const out: Pdu[] = [];
    const walk = (id: string) => {
      const pdu = events.get(id);
      if (!pdu) return;
      for (const a of pdu.auth_events) {
        if (seen.has(a)) continue;
        seen.add(a);
        const e = events.get(a);
        if (e) out.push(e);
        walk(a);
      }
    };
    ids.forEach(walk);
    return out;
  };
  const server: Server = createServer({ cert: ca.certPem, key: ca.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'https://x');
      const reply = (status: number, body: unknown) =>
        res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
      const path = url.pathname;
      if (path === '/_matrix/key/v2/server')
        return reply(200, ownServerKeys(serverName, key, [], Date.now() + 3600_000));
      let m = /^\/_matrix\/federation\/v1\/event\/(.+)$/.exec(path);
      if (m) {
        const pdu = events.get(decodeURIComponent(m[1] ?? ''));
        return pdu
          ? reply(200, { origin: serverName, origin_server_ts: Date.now(), pdus: [pdu] })
          : reply(404, { errcode: 'M_NOT_FOUND' });
      }
      m = /^\/_matrix\/federation\/v1\/event_auth\/[^/]+\/(.+)$/.exec(path);
      if (m) return reply(200, { auth_chain: authChain([decodeURIComponent(m[1] ?? '')]) });
      m = /^\/_matrix\/federation\/v1\/state_ids\/.+$/.exec(path);
      if (m) {
        const at = url.searchParams.get('event_id') ?? '';
        const state = stateAfter.get(at);
        if (!state) return reply(404, { errcode: 'M_NOT_FOUND' });
        // State before `at`: its own entry is left out when it is a state event.
        const atPdu = events.get(at);
        const before = state.filter((id) => id !== at || atPdu?.state_key === undefined);
        return reply(200, {
          pdu_ids: before,
          auth_chain_ids: authChain(before)
            .map((p) => idOf.get(p))
            .filter((id) => id !== undefined),
        });
      }
      if (/^\/_matrix\/federation\/v1\/backfill\//.test(path)) {
        remote.backfillAsked++;
        const limit = Number(url.searchParams.get('limit') ?? '10');
        const seen = new Set<string>();
        const found: Pdu[] = [];
        let frontier = url.searchParams.getAll('v');
        while (frontier.length > 0 && found.length < limit) {
          const next: string[] = [];
          for (const id of frontier) {
            const pdu = events.get(id);
            if (seen.has(id) || !pdu || found.length >= limit) continue;
            seen.add(id);
            found.push(pdu);
            next.push(...pdu.prev_events);
          }
          frontier = next;
        }
        return reply(200, {
          origin: serverName,
          origin_server_ts: Date.now(),
          pdus: [...found, ...remote.backfillExtra],
        });
      }
      if (/^\/_matrix\/federation\/v1\/get_missing_events\//.test(path)) {
        remote.missingEventsAsked++;
        if (!remote.serveMissingEvents) return reply(200, { events: [] });
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          earliest_events: string[];
          latest_events: string[];
          limit?: number;
        };
        const stop = new Set([...body.earliest_events, ...body.latest_events]);
        const found: Pdu[] = [];
        let frontier = body.latest_events;
        while (frontier.length > 0 && found.length < (body.limit ?? 10)) {
          const next: string[] = [];
          for (const id of frontier)
            for (const prev of events.get(id)?.prev_events ?? []) {
              const pdu = events.get(prev);
              if (stop.has(prev) || !pdu || found.length >= (body.limit ?? 10)) continue;
              stop.add(prev);
              found.push(pdu);
              next.push(prev);
            }
          frontier = next;
        }
        return reply(200, { events: found.sort((x, y) => x.depth - y.depth) });
      }
      m = /^\/_matrix\/federation\/v1\/send\/(.+)$/.exec(path);
      if (m && req.method === 'PUT') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          pdus: Pdu[];
          edus?: unknown[];
        };
        received.push({ pdus: body.pdus, edus: body.edus ?? [] });
        return reply(200, { pdus: {} });
      }
      reply(404, { errcode: 'M_UNRECOGNIZED' });
    });
  });
  const idOf = new Map<Pdu, string>();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const remote: FakeRemote = {
    serveMissingEvents: false,
    missingEventsAsked: 0,
    backfillExtra: [],
    backfillAsked: 0,
    serverName,
    key,
    events,
    stateAfter,
    received,
    event(version, spec) {
      const built = remoteEvent(version, serverName, key, spec);
      events.set(built.eventId, built.pdu);
      idOf.set(built.pdu, built.eventId);
      return built;
    },
    async request(destination, method, path, body, address) {
      const authorization = xMatrixHeader(
        {
          method,
          uri: path,
          origin: serverName,
          destination,
          ...(body !== undefined ? { content: body } : {}),
        },
        key,
      );
      return httpsJson(ca, `https://${address ?? destination}${path}`, {
        method,
        headers: { Authorization: authorization },
        ...(body !== undefined ? { body } : {}),
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
      }) as Promise<{ status: number; body: any }>;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return remote;
}
