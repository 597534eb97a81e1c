/**
 * Federation's network layer, built when `federation.enabled`: the outbound client, server
 * keys, inbound request authentication, the outbox's deriver and sender, and the queries.
 */
import { randomBytes } from 'node:crypto';
import { canonicalJson } from '../../core/canonical-json.js';
import { parseUserId } from '../../core/identifiers.js';
import type { OutboxKind, Stores } from '../../storage/index.js';
import type { FederationSettings, ServiceContext } from '../context.js';
import type { EventDeriver } from '../event-writer.js';
import { createFederationClient } from './client.js';
import { createServerKeyService } from './keys.js';
import { createFederationQueries } from './queries.js';
import { createRemotePublicRooms } from './public-rooms.js';
import { createInviteSender } from './invites.js';
import { createRemoteJoins } from './joins.js';
import { createRequestAuthenticator, type InboundRequest } from './request-auth.js';
import { createFederationSender, type SenderLog } from './sender.js';
import { createRoomFederation } from './rooms.js';
import { createRemoteMembership } from './remote-membership.js';
import { createLeaveRetrier } from './leave-retry.js';
import { createBackfill } from './backfill.js';
import { createPartialStateService } from './partial-state.js';
import { createPresenceRefresher, DEFAULT_PRESENCE_REFRESH_MS } from './presence-refresh.js';
import type { RoomDagService } from '../rooms-dag/index.js';

export interface FederationDeps {
  profile(userId: string): Promise<{ displayname: string | null; avatarUrl: string | null }>;
  resolveAlias(alias: string): Promise<{ roomId: string; servers: string[] }>;
  roomDag: RoomDagService;
}

export function createFederationService(
  ctx: ServiceContext,
  settings: FederationSettings,
  deps: FederationDeps,
) {
  const { serverName } = ctx.settings;
  const client = createFederationClient({
    serverName,
    signingKey: ctx.signingKey,
    extraCaPem: settings.extraCaPem,
    timeoutMs: settings.requestTimeoutMs,
    ...(ctx.discoveryResolver ? { resolver: ctx.discoveryResolver } : {}),
    now: ctx.now,
  });
  const keys = createServerKeyService(ctx, settings, client);
  const authenticateRequest = createRequestAuthenticator(ctx, keys);
  let log: SenderLog | undefined;
  // Rooms joined with partial state, their full state fetched in the background.
  const partialState = createPartialStateService(ctx, {
    client,
    publicKeyFor: (server, keyId, at) => keys.publicKeyFor(server, keyId, at),
    roomDag: () => deps.roomDag,
  });
  const sender = createFederationSender(ctx, settings, client, randomBytes(8).toString('hex'), {
    warn: (fields, message) => log?.warn(fields, message),
  });

  const leavesAndKnocks = createRemoteMembership(ctx, client, settings.retryMaxMs, () =>
    leaveRetrier.poke(),
  );
  const leaveRetrier = createLeaveRetrier(ctx, () => leavesAndKnocks, {
    warn: (fields, message) => log?.warn(fields, message),
  });

  /** Queues entries for destinations inside the caller's transaction (`stores`). */
  async function enqueue(
    stores: Stores,
    destinations: readonly string[],
    kind: OutboxKind,
    value: unknown,
  ): Promise<void> {
    const others = destinations.filter((d) => d !== serverName);
    if (others.length > 0)
      await stores.federationOutbox.insertOutbox(others, kind, canonicalJson(value), ctx.now());
  }

  /** Every new event goes to the servers with members joined to its room, in its transaction. */
  const deriver: EventDeriver = async (stores, event) => {
    // A received event was sent to every server by its origin, unless we relay it (a join,
    // leave or knock made through us), which its origin already has.
    if (event.received && !event.received.relay) return;
    const servers = new Set(
      await stores.federationOutbox.selectRemoteJoinedServers(event.roomId, serverName),
    );
    // A remote user's own membership change (a kick, a ban, a leave) reaches their server too.
    // (An invite reached the invitee's server already, through /invite.)
    if (
      event.pdu.type === 'm.room.member' &&
      typeof event.pdu.state_key === 'string' &&
      event.pdu.content.membership !== 'invite'
    ) {
      const target = parseUserId(event.pdu.state_key);
      if (target && target.serverName !== serverName) servers.add(target.serverName);
    }
    // A partial-state room's members are not all known yet: its servers_in_room too.
    for (const server of await partialState.extraDestinations(stores, event.roomId))
      servers.add(server);
    if (event.received) servers.delete(event.received.origin);
    servers.delete(serverName);
    if (servers.size > 0) await enqueue(stores, [...servers], 'pdu', event.pdu);
  };

  const presenceRefresh = createPresenceRefresher(
    ctx,
    settings.presenceRefreshMs ?? DEFAULT_PRESENCE_REFRESH_MS,
  );

  const rooms = createRoomFederation(ctx, {
    client,
    publicKeyFor: (server, keyId, at) => keys.publicKeyFor(server, keyId, at),
    roomDag: deps.roomDag,
  });

  return {
    client,
    keys,
    deriver,
    enqueue,
    sender,
    queries: createFederationQueries(ctx, deps),
    /** Other servers' public room directories, for `/publicRooms?server=`. */
    publicRooms: createRemotePublicRooms(client),
    /** Invites of other servers' users, countersigned by their servers. */
    invites: createInviteSender(client, keys),
    /** Joins to other servers' rooms (make_join/send_join), and their aliases. */
    joins: createRemoteJoins(ctx, client, keys, () => deps.roomDag, partialState),
    /** Partial-state joins: the background fetch of the full state, and waiting for it. */
    partialState,
    /** Knocks on other servers' rooms, and leaves of rooms we are only invited to or knocking on. */
    leavesAndKnocks,
    /** Leaves kept here alone, sent again with a backoff. */
    leaveRetrier,
    /** Online users' presence sent again to other servers before they time it out. */
    presenceRefresh,
    /** Rooms over federation: /send, joins, leaves, knocks, and the reads of our rooms. */
    rooms,
    /** History from before we joined (`/messages` past the join point): outbound /backfill. */
    backfill: createBackfill(ctx, {
      client,
      publicKeyFor: (server, keyId, at) => keys.publicKeyFor(server, keyId, at),
      roomDag: deps.roomDag,
      fetchStateAfter: rooms.fetchStateAfter,
    }),
    /** The origin of an authentic request (its backoff ends: it is up); 401 otherwise. */
    async authenticate(request: InboundRequest): Promise<string> {
      const origin = await authenticateRequest(request);
      void sender.wake(origin).catch(() => undefined);
      return origin;
    },
    /** Where the sender reports failures (the app's logger). */
    setLog(logger: SenderLog): void {
      log = logger;
    },
    async close(): Promise<void> {
      partialState.stop();
      await presenceRefresh.stop();
      await leaveRetrier.stop();
      await sender.stop();
      client.close();
    },
  };
}

export type FederationService = ReturnType<typeof createFederationService>;
