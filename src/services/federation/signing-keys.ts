/** The public keys that signed a set of events, fetched once each before they are checked. */
import type { Pdu } from '../../core/pdu.js';
import type { ServerVerifyKey, VerifyKeyLookup } from '../../core/pdu-checks/index.js';

/** Fetches a server's public key as it was valid at a time (null: not to be had). */
export type PublicKeyFetch = (server: string, keyId: string, at: number) => Promise<Buffer | null>;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Looks up, at once, the key of every (server, key ID) that signed one of the events, each
 * at the earliest `origin_server_ts` it signed; a key that cannot be had is left out, so its
 * signatures fail the check. Returns the synchronous lookup the PDU checks take.
 */
export async function signingKeysOf(
  events: readonly Pdu[],
  publicKeyFor: PublicKeyFetch,
): Promise<VerifyKeyLookup> {
  const wanted = new Map<string, { server: string; keyId: string; at: number }>();
  for (const pdu of events)
    for (const [server, byKey] of Object.entries(pdu.signatures ?? {}))
      for (const keyId of Object.keys(isObject(byKey) ? byKey : {})) {
        const id = `${server} ${keyId}`;
        const at = Math.min(wanted.get(id)?.at ?? Infinity, pdu.origin_server_ts);
        wanted.set(id, { server, keyId, at });
      }
  const found = new Map<string, ServerVerifyKey>();
  await Promise.all(
    [...wanted].map(async ([id, { server, keyId, at }]) => {
      const key = await publicKeyFor(server, keyId, at).catch(() => null);
      if (key) found.set(id, { key });
    }),
  );
  return (server, keyId) => found.get(`${server} ${keyId}`);
}
