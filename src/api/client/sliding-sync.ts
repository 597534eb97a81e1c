import { Type, type Static } from 'typebox';
import { invalidParam } from '../../core/errors.js';
import { parseRoomId } from '../../core/identifiers.js';
import type {
  ExtensionScope,
  ListFilters,
  ListRequest,
  RoomConfig,
  SlidingSyncRequest,
} from '../../core/sliding-sync.js';
import { requesterOf } from '../../http/request-context.js';
import type { PresenceState } from '../../services/sync.js';
import type { RoutePlugin } from './plugin.js';

export const SLIDING_SYNC_PATH = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';

/** The longest a long-poll is held, whatever the client asks (as /sync). */
const MAX_TIMEOUT_MS = 120_000;
const MAX_LISTS = 100;
const MAX_RANGES = 100;
const MAX_SUBSCRIPTIONS = 1000;
const MAX_REQUIRED_STATE = 100;
const MAX_INDEX = 1_000_000;

const Str = Type.String({ maxLength: 255 });
const StrList = Type.Array(Str, { maxItems: 100 });
const RequiredState = Type.Array(
  Type.Array(Type.String({ maxLength: 255 }), { minItems: 2, maxItems: 2 }),
  {
    maxItems: MAX_REQUIRED_STATE,
  },
);
const TimelineLimit = Type.Integer({ minimum: 0, maximum: 1_000_000 });
const RoomTypes = Type.Array(Type.Union([Str, Type.Null()]), { maxItems: 100 });

const Body = Type.Object({
  conn_id: Type.Optional(Type.String({ maxLength: 255 })),
  txn_id: Type.Optional(Type.String({ maxLength: 255 })),
  lists: Type.Optional(
    Type.Record(
      Type.String({ maxLength: 64 }),
      Type.Object({
        ranges: Type.Optional(
          Type.Array(
            Type.Array(Type.Integer({ minimum: 0, maximum: MAX_INDEX }), {
              minItems: 2,
              maxItems: 2,
            }),
            { maxItems: MAX_RANGES },
          ),
        ),
        required_state: Type.Optional(RequiredState),
        timeline_limit: Type.Optional(TimelineLimit),
        filters: Type.Optional(
          Type.Object({
            is_dm: Type.Optional(Type.Boolean()),
            is_encrypted: Type.Optional(Type.Boolean()),
            is_invite: Type.Optional(Type.Boolean()),
            room_types: Type.Optional(RoomTypes),
            not_room_types: Type.Optional(RoomTypes),
            spaces: Type.Optional(StrList),
            tags: Type.Optional(StrList),
            not_tags: Type.Optional(StrList),
          }),
        ),
      }),
    ),
  ),
  room_subscriptions: Type.Optional(
    Type.Record(
      Type.String({ maxLength: 255 }),
      Type.Object({
        required_state: Type.Optional(RequiredState),
        timeline_limit: Type.Optional(TimelineLimit),
      }),
    ),
  ),
  extensions: Type.Optional(
    Type.Object({
      to_device: Type.Optional(
        Type.Object({
          enabled: Type.Optional(Type.Boolean()),
          since: Type.Optional(Str),
          limit: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
        }),
      ),
      e2ee: Type.Optional(Type.Object({ enabled: Type.Optional(Type.Boolean()) })),
      account_data: Type.Optional(
        Type.Object({
          enabled: Type.Optional(Type.Boolean()),
          lists: Type.Optional(StrList),
          rooms: Type.Optional(StrList),
        }),
      ),
      receipts: Type.Optional(
        Type.Object({
          enabled: Type.Optional(Type.Boolean()),
          lists: Type.Optional(StrList),
          rooms: Type.Optional(StrList),
        }),
      ),
      typing: Type.Optional(
        Type.Object({
          enabled: Type.Optional(Type.Boolean()),
          lists: Type.Optional(StrList),
          rooms: Type.Optional(StrList),
        }),
      ),
    }),
  ),
});
type Body = Static<typeof Body>;

const Query = Type.Object({
  pos: Type.Optional(Type.String({ maxLength: 255 })),
  timeout: Type.Optional(Type.String({ maxLength: 20 })),
  set_presence: Type.Optional(Type.String({ maxLength: 20 })),
});

function timeoutParam(value: string | undefined): number {
  if (value === undefined) return 0;
  if (!/^\d+$/.test(value)) throw invalidParam('timeout must be a number of milliseconds');
  return Math.min(Number(value), MAX_TIMEOUT_MS);
}

function presenceParam(value: string | undefined): PresenceState {
  if (value === undefined) return 'online';
  if (value === 'online' || value === 'offline' || value === 'unavailable') return value;
  throw invalidParam('set_presence must be online, offline or unavailable');
}

function roomConfig(raw: {
  required_state?: string[][] | undefined;
  timeline_limit?: number | undefined;
}): RoomConfig {
  return {
    requiredState: (raw.required_state ?? []).map(([type = '', key = '']) => [type, key] as const),
    timelineLimit: raw.timeline_limit ?? 0,
  };
}

function scope(
  raw:
    | { enabled?: boolean | undefined; lists?: string[] | undefined; rooms?: string[] | undefined }
    | undefined,
): ExtensionScope {
  for (const id of raw?.rooms ?? [])
    if (id !== '*' && !parseRoomId(id)) throw invalidParam(`Not a room ID: ${id}`);
  return { enabled: raw?.enabled === true, lists: raw?.lists, rooms: raw?.rooms };
}

/** The request body as the service takes it, every field checked. */
export function toSlidingSyncRequest(body: Body): SlidingSyncRequest {
  const lists = new Map<string, ListRequest>();
  const rawLists = Object.entries(body.lists ?? {});
  if (rawLists.length > MAX_LISTS) throw invalidParam(`At most ${MAX_LISTS} lists`);
  for (const [name, list] of rawLists) {
    const ranges = (list.ranges ?? []).map(([start = 0, end = 0]) => {
      if (end < start) throw invalidParam(`List ${name}: a range ends before it starts`);
      return [start, end] as const;
    });
    const f = list.filters ?? {};
    for (const space of f.spaces ?? [])
      if (!parseRoomId(space)) throw invalidParam(`List ${name}: not a room ID: ${space}`);
    const filters: ListFilters = {
      isDm: f.is_dm,
      isEncrypted: f.is_encrypted,
      isInvite: f.is_invite,
      roomTypes: f.room_types,
      notRoomTypes: f.not_room_types,
      spaces: f.spaces,
      tags: f.tags,
      notTags: f.not_tags,
    };
    lists.set(name, { ...roomConfig(list), ranges, filters });
  }
  const roomSubscriptions = new Map<string, RoomConfig>();
  const rawSubscriptions = Object.entries(body.room_subscriptions ?? {});
  if (rawSubscriptions.length > MAX_SUBSCRIPTIONS)
    throw invalidParam(`At most ${MAX_SUBSCRIPTIONS} room subscriptions`);
  for (const [roomId, config] of rawSubscriptions) {
    if (!parseRoomId(roomId)) throw invalidParam(`Not a room ID: ${roomId}`);
    roomSubscriptions.set(roomId, roomConfig(config));
  }
  const ext = body.extensions ?? {};
  return {
    connId: body.conn_id ?? '',
    txnId: body.txn_id,
    lists,
    roomSubscriptions,
    extensions: {
      toDevice: {
        enabled: ext.to_device?.enabled === true,
        since: ext.to_device?.since,
        limit: ext.to_device?.limit,
      },
      e2ee: { enabled: ext.e2ee?.enabled === true },
      accountData: scope(ext.account_data),
      receipts: scope(ext.receipts),
      typing: scope(ext.typing),
    },
  };
}

// Simplified sliding sync (MSC4186), as matrix-rust-sdk (Element X) uses it.
export const slidingSyncRoutes: RoutePlugin = async (app, { services }) => {
  // https://github.com/matrix-org/matrix-spec-proposals/pull/4186 — lists, room subscriptions, extensions; long-polled.
  app.post(
    SLIDING_SYNC_PATH,
    {
      config: { auth: 'required', rateLimit: false },
      schema: { querystring: Query, body: Body },
    },
    async (request, reply) => {
      const requester = requesterOf(request);
      const slidingRequest = toSlidingSyncRequest(request.body);
      const gone = new AbortController();
      reply.raw.on('close', () => gone.abort());
      return services.slidingSync.sync(requester, slidingRequest, {
        pos: request.query.pos,
        timeoutMs: timeoutParam(request.query.timeout),
        setPresence: presenceParam(request.query.set_presence),
        signal: gone.signal,
      });
    },
  );
};
