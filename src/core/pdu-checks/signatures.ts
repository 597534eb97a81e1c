/**
 * Check 2 on receipt of a PDU: its signatures, otherwise it is dropped.
 * Spec: https://spec.matrix.org/v1.16/server-server-api/#validating-hashes-and-signatures-on-received-events
 * and https://spec.matrix.org/v1.16/rooms/v10/#signing-key-validity-period.
 *
 * Keys come from the caller (a cache of `/_matrix/key/v2` answers): this code only checks.
 */
import { decodeBase64Unpadded, decodeUrlSafeBase64Unpadded } from '../canonical-json.js';
import { parseUserId } from '../identifiers.js';
import type { JsonObject, Pdu, RoomVersionId } from '../pdu.js';
import { verifyJsonSignature, verifyPduSignature } from '../signing.js';

/** A server's public key as the key cache knows it. */
export interface ServerVerifyKey {
  /** The raw 32-byte ed25519 public key. */
  readonly key: Uint8Array;
  /**
   * Until when (ms since the epoch) the key may sign: `valid_until_ts` of a current key
   * (already capped at seven days from when it was fetched, as the spec requires), or
   * `expired_ts` of an old one. Events with a later `origin_server_ts` do not count its
   * signature. Absent: no limit known.
   */
  readonly validUntilTs?: number;
}

/** Finds a server's key by key ID (`ed25519:abc`); undefined when the key is not known. */
export type VerifyKeyLookup = (serverName: string, keyId: string) => ServerVerifyKey | undefined;

export type SignatureResult =
  | { readonly valid: true; readonly signedBy: ReadonlySet<string> }
  | { readonly valid: false; readonly reason: string };

const serverOf = (userId: string): string | undefined => parseUserId(userId)?.serverName;

/** An `m.room.member` invite through a third-party identifier (its sender's server need not sign). */
function isThirdPartyInvite(pdu: Pdu): boolean {
  return (
    pdu.type === 'm.room.member' &&
    pdu.content['membership'] === 'invite' &&
    Object.hasOwn(pdu.content, 'third_party_invite')
  );
}

/**
 * The servers whose signatures a PDU needs: the sender's (except on a third-party invite,
 * which the invitee's server may send) and, for a join authorised through
 * `join_authorised_via_users_server` (restricted rooms), the authorising user's server.
 * Room versions 1 and 2 also needed the server of the event ID; in the versions here event
 * IDs are hashes with no server, so that rule never applies.
 */
export function requiredSigningServers(pdu: Pdu, _roomVersion: RoomVersionId): string[] {
  const servers = new Set<string>();
  if (!isThirdPartyInvite(pdu)) {
    const sender = serverOf(pdu.sender);
    if (sender !== undefined) servers.add(sender);
  }
  if (pdu.type === 'm.room.member' && pdu.content['membership'] === 'join') {
    const via = pdu.content['join_authorised_via_users_server'];
    const server = typeof via === 'string' ? serverOf(via) : undefined;
    if (server !== undefined) servers.add(server);
  }
  return [...servers];
}

/**
 * Checks the signatures of every required server: signatures by keys the caller does not
 * know, or that had expired before the event's `origin_server_ts`, are skipped; every other
 * one must verify over the redacted event, and each server needs at least one that does.
 */
export function checkPduSignatures(
  pdu: Pdu,
  roomVersion: RoomVersionId,
  lookupKey: VerifyKeyLookup,
): SignatureResult {
  const signedBy = new Set<string>();
  for (const server of requiredSigningServers(pdu, roomVersion)) {
    const signatures = pdu.signatures[server];
    if (signatures === undefined) {
      return { valid: false, reason: `The event is not signed by ${server}` };
    }
    let verified = 0;
    for (const keyId of Object.keys(signatures)) {
      if (!keyId.startsWith('ed25519:')) continue;
      const key = lookupKey(server, keyId);
      if (key === undefined) continue;
      if (key.validUntilTs !== undefined && key.validUntilTs < pdu.origin_server_ts) continue;
      if (!verifyPduSignature(pdu, roomVersion, server, keyId, key.key)) {
        return { valid: false, reason: `The signature of ${server} with key ${keyId} is invalid` };
      }
      verified += 1;
    }
    if (verified === 0) {
      return {
        valid: false,
        reason: `The event has no signature of ${server} by a known key valid at its origin_server_ts`,
      };
    }
    signedBy.add(server);
  }
  return { valid: true, signedBy };
}

/** Decodes an unpadded Base64 public key in either alphabet; undefined when it is not one. */
function decodePublicKey(encoded: string): Uint8Array | undefined {
  for (const decode of [decodeBase64Unpadded, decodeUrlSafeBase64Unpadded]) {
    try {
      const key = decode(encoded);
      if (key.length === 32) return key;
    } catch {
      // Try the other alphabet.
    }
  }
  return undefined;
}

/**
 * Whether `signed` (`content.third_party_invite.signed` of an invite) carries a valid
 * signature by one of `publicKeys` (from the `m.room.third_party_invite` event), as the
 * third-party invite auth rule requires. Pass as `AuthChecks.verifyThirdPartySigned`.
 */
export function verifyThirdPartySigned(signed: JsonObject, publicKeys: readonly string[]): boolean {
  const signatures = signed['signatures'];
  if (typeof signatures !== 'object' || signatures === null || Array.isArray(signatures)) {
    return false;
  }
  const keys = publicKeys.flatMap((encoded) => {
    const key = decodePublicKey(encoded);
    return key === undefined ? [] : [key];
  });
  for (const [server, byKey] of Object.entries(signatures)) {
    if (typeof byKey !== 'object' || byKey === null || Array.isArray(byKey)) continue;
    for (const keyId of Object.keys(byKey)) {
      for (const key of keys) if (verifyJsonSignature(signed, server, keyId, key)) return true;
    }
  }
  return false;
}
