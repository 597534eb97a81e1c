/**
 * The user's pushers: `GET /pushers` and `POST /pushers/set`. A pusher belongs to the device
 * whose access token set it and goes with it (logout, device deletion, a password change that
 * logs other devices out, deactivation: storage/pusher-store.ts `deletePushersOfDevices`).
 * https://spec.matrix.org/v1.19/client-server-api/#push-notifications
 */
import { parsePusherRequest } from '../../core/pushers.js';
import type { JsonObject } from '../../core/pdu.js';
import { randomString } from '../../core/secrets.js';
import type { PusherRow } from '../../storage/index.js';
import type { Requester, ServiceContext } from '../context.js';

function pusherJson(row: PusherRow): JsonObject {
  const json: JsonObject = {
    pushkey: row.pushkey,
    kind: row.kind,
    app_id: row.appId,
    app_display_name: row.appDisplayName,
    device_display_name: row.deviceDisplayName,
    lang: row.lang,
    data: JSON.parse(row.data) as JsonObject,
  };
  if (row.profileTag !== null) json.profile_tag = row.profileTag;
  return json;
}

export function createPusherService(ctx: ServiceContext) {
  return {
    async list(requester: Requester): Promise<{ pushers: JsonObject[] }> {
      const rows = await ctx.storage.stores.pushers.selectPushersOfUser(requester.userId);
      return { pushers: rows.map(pusherJson) };
    },

    /**
     * Creates, updates (same app ID and pushkey) or, with `kind: null`, deletes a pusher.
     * Without `append`, other users' pushers of the same app ID and pushkey are removed.
     */
    async set(requester: Requester, body: unknown): Promise<void> {
      const request = parsePusherRequest(body);
      await ctx.storage.tx('setPusher', async (tx) => {
        if (request.kind === null) {
          await tx.pushers.deletePusher(requester.userId, request.appId, request.pushkey);
          return;
        }
        await tx.pushers.upsertPusher({
          pusherId: randomString(24),
          userId: requester.userId,
          deviceId: requester.deviceId,
          kind: request.kind,
          appId: request.appId,
          pushkey: request.pushkey,
          appDisplayName: request.appDisplayName,
          deviceDisplayName: request.deviceDisplayName,
          profileTag: request.profileTag,
          lang: request.lang,
          data: JSON.stringify(request.data),
          pushkeyTs: ctx.now(),
        });
        if (!request.append)
          await tx.pushers.deleteOtherUsersPushers(
            request.appId,
            request.pushkey,
            requester.userId,
          );
      });
    },
  };
}

export type PusherService = ReturnType<typeof createPusherService>;
