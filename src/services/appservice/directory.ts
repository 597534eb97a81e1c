/**
 * Application services' room directories, one per network (protocol instance): a service
 * publishes rooms in them, and `/publicRooms` lists one (`third_party_instance_id`, written
 * `<service id>|<network id>`) or all of them with the server's own (`include_all_networks`).
 * https://spec.matrix.org/v1.19/application-service-api/#published-room-directories
 */
import { forbidden, invalidParam, notFound } from '../../core/errors.js';
import type { PublicRoomsFilter } from '../../storage/index.js';
import type { Requester, ServiceContext } from '../context.js';

export function createAppServiceDirectory(ctx: ServiceContext) {
  return {
    /** `PUT /directory/list/appservice/{networkId}/{roomId}`: for services only. */
    async setVisibility(
      requester: Requester,
      networkId: string,
      roomId: string,
      visibility: 'public' | 'private',
    ): Promise<void> {
      const service = requester.appservice;
      if (!service) throw forbidden('Only application services publish rooms in a network');
      await ctx.storage.tx('setNetworkRoomVisibility', async (s) => {
        if (!(await s.rooms.selectRoom(roomId))) throw notFound('Unknown room');
        if (visibility === 'public')
          await s.appservices.insertDirectoryRoom(service.id, networkId, roomId);
        else await s.appservices.deleteDirectoryRoom(service.id, networkId, roomId);
      });
    },
  };
}

/** The directory a `/publicRooms` request asks for (PublicRoomsFilter.network). */
export function networkOfRequest(
  includeAllNetworks: boolean | undefined,
  thirdPartyInstanceId: string | undefined,
): PublicRoomsFilter['network'] {
  if (includeAllNetworks === true) {
    if (thirdPartyInstanceId !== undefined)
      throw invalidParam('third_party_instance_id cannot be used with include_all_networks');
    return 'all';
  }
  if (thirdPartyInstanceId === undefined) return undefined;
  const bar = thirdPartyInstanceId.indexOf('|');
  if (bar <= 0 || bar === thirdPartyInstanceId.length - 1)
    throw invalidParam('third_party_instance_id must be "<service id>|<network id>"');
  return {
    serviceId: thirdPartyInstanceId.slice(0, bar),
    networkId: thirdPartyInstanceId.slice(bar + 1),
  };
}
