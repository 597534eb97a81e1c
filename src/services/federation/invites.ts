/**
 * Inviting another server's user to a local room: the invite event, built and signed here,
 * goes to the invitee's server (`PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`) with
 * the room's stripped state; that server answers with the event countersigned, which is
 * checked (the same event, a valid signature of that server) before the room keeps it.
 * https://spec.matrix.org/v1.19/server-server-api/#inviting-to-a-room
 */
import { canonicalJson } from '../../core/canonical-json.js';
import { MatrixError, forbidden, unknown } from '../../core/errors.js';
import { parseUserId } from '../../core/identifiers.js';
import type { Pdu, RoomVersionId } from '../../core/pdu.js';
import { verifyPduSignature } from '../../core/signing.js';
import type { FederationClient } from './client.js';
import type { ServerKeyService } from './keys.js';

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The event without what the invitee's server may add (its signature, `unsigned`). */
const comparable = (pdu: Record<string, unknown>) =>
  canonicalJson({ ...pdu, signatures: undefined, unsigned: undefined });

export function createInviteSender(client: FederationClient, keys: ServerKeyService) {
  return {
    /**
     * Sends the invite to the invitee's server and returns the event as it countersigned it
     * (our signatures and its own). Refusals are passed on (403 M_FORBIDDEN); an unreachable
     * server or a wrong answer is 502.
     */
    async send(
      roomId: string,
      roomVersion: RoomVersionId,
      eventId: string,
      pdu: Pdu,
      strippedState: readonly Pdu[],
    ): Promise<Pdu> {
      const invitee = parseUserId(pdu.state_key ?? '');
      if (!invitee) throw forbidden('The invite names no user');
      const server = invitee.serverName;
      let response;
      try {
        response = await client.request(
          server,
          'PUT',
          `/_matrix/federation/v2/invite/${encodeURIComponent(roomId)}/${encodeURIComponent(eventId)}`,
          { body: { room_version: roomVersion, event: pdu, invite_room_state: strippedState } },
        );
      } catch (err) {
        throw unknown(`${server} could not be reached: ${(err as Error).message}`, 502);
      }
      const body = response.body;
      if (response.status !== 200) {
        if (
          response.status >= 400 &&
          response.status < 500 &&
          isObject(body) &&
          typeof body.errcode === 'string'
        )
          throw new MatrixError(
            response.status === 400 ? 400 : 403,
            body.errcode,
            typeof body.error === 'string' ? body.error : `${server} refused the invite`,
          );
        throw unknown(`${server} answered the invite with HTTP ${response.status}`, 502);
      }
      const signed = isObject(body) ? body.event : undefined;
      if (
        !isObject(signed) ||
        comparable(signed) !== comparable(pdu as unknown as Record<string, unknown>)
      )
        throw unknown(`${server} answered the invite with another event`, 502);
      const theirs = isObject(signed.signatures) ? signed.signatures[server] : undefined;
      let verified = false;
      for (const keyId of Object.keys(isObject(theirs) ? theirs : {})) {
        const key = await keys.publicKeyFor(server, keyId, pdu.origin_server_ts);
        if (key && verifyPduSignature(signed as unknown as Pdu, roomVersion, server, keyId, key)) {
          verified = true;
          break;
        }
      }
      if (!verified) throw unknown(`${server} did not sign the invite`, 502);
      return {
        ...pdu,
        signatures: {
          ...pdu.signatures,
          [server]: theirs as Record<string, string>,
        },
      };
    },
  };
}

export type InviteSender = ReturnType<typeof createInviteSender>;
