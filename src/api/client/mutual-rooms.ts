import { Type } from 'typebox';
import { MatrixError, invalidParam } from '../../core/errors.js';
import { parseUserId } from '../../core/identifiers.js';
import type { FastRead } from '../../http/fast-reads.js';
import { requesterOf } from '../../http/request-context.js';
import type { MutualRoomsPage, Requester } from '../../services/index.js';
import type { RoutePlugin } from './plugin.js';

const V1 = '/_matrix/client/v1';
const UNSTABLE = '/_matrix/client/unstable/uk.half-shot.msc2666';
const config = { auth: 'required', rateLimit: 'mutual_rooms' } as const;
/**
 * The query forms: `user_id` names the other user, so an application service's token acts as
 * its sender (docs/appservices.md); the path forms below keep `user_id` for masquerading.
 */
const queryConfig = { ...config, userIdParam: true } as const;
/** Repeated `user_id`s only matter with `mutual_rooms.multi_user`; a cap keeps pages cheap. */
const MAX_USERS = 10;
/** Fastify's own Content-Type for JSON answers. */
const JSON_TYPE = 'application/json; charset=utf-8';
/** The longest paging token accepted (the spec's limit). */
const MAX_TOKEN_LENGTH = 255;
const Token = Type.Optional(Type.String({ maxLength: MAX_TOKEN_LENGTH }));
const UserIds = Type.Array(Type.String(), { minItems: 1, maxItems: MAX_USERS });

/** How a path answers a request about the requester's own ID. */
type SelfError = 'v1' | 'unstable';

function ownIdError(style: SelfError): MatrixError {
  return style === 'v1'
    ? invalidParam('You cannot request rooms in common with yourself')
    : new MatrixError(400, 'M_UNKNOWN', 'you cannot request rooms in common with yourself');
}

/** Validated, distinct user IDs under the historical grammar, none the requester's own. */
function parseUserIds(
  raw: readonly string[],
  requester: Requester,
  multiUser: boolean,
  self: SelfError,
): string[] {
  if (raw.length > 1 && !multiUser) throw invalidParam('user_id must be given once');
  const userIds = raw.map((value) => {
    const parsed = parseUserId(value);
    if (!parsed) throw invalidParam(`Invalid user ID: ${JSON.stringify(value.slice(0, 300))}`);
    if (parsed.userId === requester.userId) throw ownIdError(self);
    return parsed.userId as string;
  });
  if (new Set(userIds).size !== userIds.length) throw invalidParam('user_id repeats a user');
  return userIds;
}

// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mutual_rooms
// Also the proposal's (MSC2666) paths: /v1/user/mutual_rooms, its unstable prefix with the
// older names (`batch_token`, `next_batch_token`), and the oldest unpaged forms by path.
export const mutualRoomsRoutes: RoutePlugin = async (
  app,
  { services, config: settings, fastReads },
) => {
  const { mutualRooms } = services;
  const multiUser = settings.mutual_rooms.multi_user;

  const v1 = {
    config: queryConfig,
    schema: { querystring: Type.Object({ user_id: UserIds, from: Token }) },
  };
  // The service answers a repeated request with the page object it cached: its body is
  // serialised and encoded once.
  const v1Bodies = new WeakMap<MutualRoomsPage, Buffer>();
  const v1Body = (page: MutualRoomsPage): Buffer => {
    let body = v1Bodies.get(page);
    if (body === undefined) {
      body = Buffer.from(
        JSON.stringify({
          joined: page.joined,
          count: page.count,
          ...(page.nextBatch !== undefined ? { next_batch: page.nextBatch } : {}),
        }),
      );
      v1Bodies.set(page, body);
    }
    return body;
  };
  /**
   * The fast form of the v1 paths: a query the schema accepts at once (no coercion needed),
   * checked as the handler checks it; every other request is the Fastify route's.
   */
  const fastRead: FastRead = ({ requester, query }) => {
    const { user_id: raw, from } = query;
    const given = typeof raw === 'string' ? [raw] : raw;
    if (given === undefined || given.length > MAX_USERS) return null;
    if (from !== undefined && (typeof from !== 'string' || from.length > MAX_TOKEN_LENGTH))
      return null;
    let userIds: string[];
    try {
      userIds = parseUserIds(given, requester, multiUser, 'v1');
    } catch {
      return null;
    }
    return () => mutualRooms.page(requester, userIds, from).then(v1Body);
  };
  for (const path of [`${V1}/mutual_rooms`, `${V1}/user/mutual_rooms`]) {
    app.get(path, v1, async (request, reply) => {
      const requester = requesterOf(request);
      const userIds = parseUserIds(request.query.user_id, requester, multiUser, 'v1');
      const page = await mutualRooms.page(requester, userIds, request.query.from);
      return reply.type(JSON_TYPE).send(v1Body(page));
    });
    fastReads?.add({ path, rateLimit: config.rateLimit, contentType: JSON_TYPE, read: fastRead });
  }

  app.get(
    `${UNSTABLE}/user/mutual_rooms`,
    {
      config: queryConfig,
      schema: {
        querystring: Type.Object({ user_id: UserIds, from: Token, batch_token: Token }),
      },
    },
    async (request) => {
      const requester = requesterOf(request);
      const userIds = parseUserIds(request.query.user_id, requester, multiUser, 'unstable');
      const { from, batch_token: batchToken } = request.query;
      if (from !== undefined && batchToken !== undefined && from !== batchToken)
        throw invalidParam('from and batch_token disagree');
      const page = await mutualRooms.page(requester, userIds, from ?? batchToken);
      return {
        joined: page.joined,
        count: page.count,
        ...(page.nextBatch !== undefined
          ? { next_batch: page.nextBatch, next_batch_token: page.nextBatch }
          : {}),
      };
    },
  );

  // The first forms of the proposal: the user in the path, every shared room at once.
  for (const name of ['mutual_rooms', 'shared_rooms']) {
    app.get(
      `${UNSTABLE}/user/${name}/:userId`,
      {
        config,
        schema: { params: Type.Object({ userId: Type.String({ minLength: 1 }) }) },
      },
      async (request) => {
        const requester = requesterOf(request);
        const [userId = ''] = parseUserIds([request.params.userId], requester, false, 'unstable');
        return mutualRooms.all(requester, userId);
      },
    );
  }
};
