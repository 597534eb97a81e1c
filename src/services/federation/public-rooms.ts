/**
 * Another server's public room directory, asked for a local client (`/publicRooms?server=`):
 * `POST /_matrix/federation/v1/publicRooms` with the client's limit, token and filter, and
 * the answer checked before it is passed on.
 * https://spec.matrix.org/v1.19/server-server-api/#public-room-directory
 */
import { MatrixError, invalidParam, unknown } from '../../core/errors.js';
import { isValidServerName } from '../../core/identifiers.js';
import type { PublicRoomsPage, PublishedRoom } from '../directory.js';
import type { FederationClient } from './client.js';

export interface RemotePublicRoomsRequest {
  limit?: number | undefined;
  since?: string | undefined;
  searchTerm?: string | undefined;
  roomTypes?: readonly (string | null)[] | undefined;
  includeAllNetworks?: boolean | undefined;
  thirdPartyInstanceId?: string | undefined;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A chunk entry as the spec shapes it, or null when it is not one. */
function publishedRoom(value: unknown): PublishedRoom | null {
  if (!isObject(value) || typeof value.room_id !== 'string') return null;
  const room: PublishedRoom = {
    room_id: value.room_id,
    num_joined_members: Number.isSafeInteger(value.num_joined_members)
      ? (value.num_joined_members as number)
      : 0,
    world_readable: value.world_readable === true,
    guest_can_join: value.guest_can_join === true,
  };
  for (const field of [
    'join_rule',
    'name',
    'topic',
    'canonical_alias',
    'avatar_url',
    'room_type',
  ] as const)
    if (typeof value[field] === 'string') room[field] = value[field];
  return room;
}

export function createRemotePublicRooms(client: FederationClient) {
  return {
    async query(server: string, request: RemotePublicRoomsRequest): Promise<PublicRoomsPage> {
      if (!isValidServerName(server)) throw invalidParam('Invalid server name');
      if (request.limit !== undefined && request.limit < 0)
        throw invalidParam('limit must not be negative');
      const filter = {
        ...(request.searchTerm !== undefined ? { generic_search_term: request.searchTerm } : {}),
        ...(request.roomTypes !== undefined ? { room_types: request.roomTypes } : {}),
      };
      const body = {
        ...(request.limit !== undefined && request.limit > 0 ? { limit: request.limit } : {}),
        ...(request.since !== undefined ? { since: request.since } : {}),
        ...(Object.keys(filter).length > 0 ? { filter } : {}),
        ...(request.includeAllNetworks !== undefined
          ? { include_all_networks: request.includeAllNetworks }
          : {}),
        ...(request.thirdPartyInstanceId !== undefined
          ? { third_party_instance_id: request.thirdPartyInstanceId }
          : {}),
      };
      let response;
      try {
        response = await client.request(server, 'POST', '/_matrix/federation/v1/publicRooms', {
          body,
        });
      } catch (err) {
        throw unknown(`${server} could not be reached: ${(err as Error).message}`, 502);
      }
      const answer = response.body;
      if (response.status !== 200) {
        // The other server's refusal is passed on (a bad token, say); anything else is ours.
        if (
          response.status >= 400 &&
          response.status < 500 &&
          isObject(answer) &&
          typeof answer.errcode === 'string'
        )
          throw new MatrixError(
            response.status,
            answer.errcode,
            typeof answer.error === 'string' ? answer.error : `${server} refused`,
          );
        throw unknown(`${server} answered HTTP ${response.status}`, 502);
      }
      if (!isObject(answer) || !Array.isArray(answer.chunk))
        throw unknown(`${server} sent a directory page that is not one`, 502);
      const page: PublicRoomsPage = {
        chunk: answer.chunk.map(publishedRoom).filter((room) => room !== null),
        total_room_count_estimate: Number.isSafeInteger(answer.total_room_count_estimate)
          ? (answer.total_room_count_estimate as number)
          : 0,
      };
      if (typeof answer.next_batch === 'string') page.next_batch = answer.next_batch;
      if (typeof answer.prev_batch === 'string') page.prev_batch = answer.prev_batch;
      return page;
    },
  };
}

export type RemotePublicRooms = ReturnType<typeof createRemotePublicRooms>;
