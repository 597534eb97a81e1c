import { Type } from 'typebox';
import type { FastifyReply } from 'fastify';
import { parseRoomId } from '../../core/identifiers.js';
import type { FastRead } from '../../http/fast-reads.js';
import { requesterOf } from '../../http/request-context.js';
import { jsonStream } from '../../http/json-stream.js';
import { MEMBERSHIPS } from '../../services/member-lists.js';
import { FilterParam, RoomParams, roomIdParam } from './params.js';
import { parseRoomEventFilter } from './room-filter.js';
import type { RoutePlugin } from './plugin.js';

const MembershipValue = Type.Union(MEMBERSHIPS.map((m) => Type.Literal(m)));
/** `?membership=join&membership=invite` (MSC2895 option 1) as well as a single value. */
const MembershipList = Type.Optional(Type.Array(MembershipValue, { minItems: 1, maxItems: 10 }));
const queryConfig = { auth: 'required', rateLimit: 'query' } as const;

/** Fastify's own Content-Type for JSON answers. */
const JSON_TYPE = 'application/json; charset=utf-8';
const sendJson = (reply: FastifyReply, body: NodeJS.ReadableStream | Buffer) =>
  reply.type(JSON_TYPE).send(body);

// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidmembers
// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidjoined_members
// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3joined_rooms
export const memberListRoutes: RoutePlugin = async (app, { services, fastReads }) => {
  const { memberLists } = services;
  // Fast forms (src/http/fast-reads.ts) of the two lists bridges and bots ask for again and
  // again: the body this process holds, for a requester it lists (so joined) or whose rooms
  // it is; anything else (no body held, an error) is the Fastify route's.
  const fastJoinedMembers: FastRead = ({ requester, param }) => {
    const roomId = parseRoomId(param);
    const body = roomId && memberLists.heldJoinedMembers(requester, roomId);
    return body ? () => Promise.resolve(body) : null;
  };
  const fastJoinedRooms: FastRead = ({ requester }) => {
    const body = memberLists.heldJoinedRooms(requester);
    return body ? () => Promise.resolve(body) : null;
  };
  const fast = (path: string, read: FastRead) =>
    fastReads?.add({
      path: `${app.prefix}${path}`,
      rateLimit: queryConfig.rateLimit,
      contentType: JSON_TYPE,
      read,
    });
  fast('/rooms/:roomId/joined_members', fastJoinedMembers);
  fast('/joined_rooms', fastJoinedRooms);

  // Members now, or as of `at`; membership/not_membership combine with "or" as the spec
  // says; `filter` (MSC2895) adds membership, limit and senders. Streamed in batches.
  app.get(
    '/rooms/:roomId/members',
    {
      config: queryConfig,
      schema: {
        params: RoomParams,
        querystring: Type.Object({
          at: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          membership: MembershipList,
          not_membership: MembershipList,
          filter: FilterParam,
        }),
      },
    },
    async (request, reply) => {
      // The service hands out the body whole when it holds it, else its events serialised.
      const answer = await memberLists.members(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        {
          at: request.query.at,
          memberships: request.query.membership,
          notMemberships: request.query.not_membership,
          filter: parseRoomEventFilter(request.query.filter),
        },
      );
      if ('body' in answer) return sendJson(reply, answer.body);
      return sendJson(reply, jsonStream(answer.open, answer.entries, answer.close));
    },
  );

  // Current joined members with display names and avatars; for joined members.
  app.get(
    '/rooms/:roomId/joined_members',
    { config: queryConfig, schema: { params: RoomParams } },
    async (request, reply) => {
      // The service hands out the body whole when it holds it, else its entries serialised.
      const answer = await memberLists.joinedMembers(
        requesterOf(request),
        roomIdParam(request.params.roomId),
      );
      if ('body' in answer) return sendJson(reply, answer.body);
      return sendJson(reply, jsonStream(answer.open, answer.entries, answer.close));
    },
  );

  app.get('/joined_rooms', { config: queryConfig }, async (request, reply) =>
    sendJson(reply, await memberLists.joinedRooms(requesterOf(request))),
  );
};

/** MSC2895's listing of the requester's rooms with their membership. */
export const roomListingRoutes: RoutePlugin = async (app, { services }) => {
  app.get(
    '/_matrix/client/unstable/org.matrix.msc2895/rooms',
    {
      config: queryConfig,
      schema: {
        querystring: Type.Object({ membership: MembershipList, filter: FilterParam }),
      },
    },
    async (request) => ({
      rooms: await services.memberLists.roomListing(requesterOf(request), {
        memberships: request.query.membership,
        filter: parseRoomEventFilter(request.query.filter),
      }),
    }),
  );
};
