/**
 * Queues EDUs for other servers in the transaction of the local change they report (the
 * outbox's EDU path, sent by the federation sender): to the servers of a room's other
 * members, to the servers sharing a room with a user, or to named servers. Nothing is queued
 * when federation is off. https://spec.matrix.org/v1.19/server-server-api/#edus
 */
import { canonicalJson } from '../../core/canonical-json.js';
import type { JsonObject } from '../../core/pdu.js';
import type { Stores } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';

/** Queues one EDU for each destination other than this server, and wakes the sender at commit. */
export async function queueEdu(
  ctx: Pick<ServiceContext, 'settings' | 'now'>,
  stores: Stores,
  destinations: Iterable<string>,
  eduType: string,
  content: JsonObject,
): Promise<void> {
  if (!ctx.settings.federation) return;
  const others = [...new Set(destinations)].filter((d) => d !== ctx.settings.serverName).sort();
  if (others.length === 0) return;
  await stores.federationOutbox.insertOutbox(
    others,
    'edu',
    canonicalJson({ edu_type: eduType, content }),
    ctx.now(),
  );
  await stores.stream.notify({ destinations: others });
}

/** Queues an EDU for the servers of the room's joined members (not this one). */
export async function queueRoomEdu(
  ctx: Pick<ServiceContext, 'settings' | 'now'>,
  stores: Stores,
  roomId: string,
  eduType: string,
  content: JsonObject,
): Promise<void> {
  if (!ctx.settings.federation) return;
  const servers = await stores.federationOutbox.selectRemoteJoinedServers(
    roomId,
    ctx.settings.serverName,
  );
  // A room joined with partial state: its servers_in_room too (members not all known yet).
  const partial = await stores.partialState.selectPartialRoom(roomId);
  const all = partial
    ? [...new Set([...servers, ...partial.servers])].filter((s) => s !== ctx.settings.serverName)
    : servers;
  await queueEdu(ctx, stores, all, eduType, content);
}

/** Queues an EDU for the servers of everyone sharing a joined room with `userId`. */
export async function queueUserEdu(
  ctx: Pick<ServiceContext, 'settings' | 'now'>,
  stores: Stores,
  userId: string,
  eduType: string,
  content: JsonObject,
): Promise<void> {
  if (!ctx.settings.federation) return;
  const servers = await stores.federationOutbox.selectRemoteServersSharingRoom(
    userId,
    ctx.settings.serverName,
  );
  await queueEdu(ctx, stores, servers, eduType, content);
}
