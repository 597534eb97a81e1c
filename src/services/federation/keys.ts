/**
 * Signing keys between servers: our own `/_matrix/key/v2/server` answer, other servers' keys
 * fetched (from the server itself, then from the configured notaries) and cached in the
 * database with their validity, and the notary answers of `/_matrix/key/v2/query`.
 * https://spec.matrix.org/v1.19/server-server-api/#retrieving-server-keys
 */
import { base64Unpadded, canonicalJson, decodeBase64Unpadded } from '../../core/canonical-json.js';
import {
  keyValidAt,
  ownServerKeys,
  verifyServerKeys,
  type ServerKeysJson,
  type VerifiedKey,
} from '../../core/server-keys.js';
import { signJson, verifyJsonSignature } from '../../core/signing.js';
import type { ServerKeyRow } from '../../storage/index.js';
import type { FederationSettings, ServiceContext } from '../context.js';
import type { FederationClient } from './client.js';

/** The shortest time between two direct fetches of one server's keys. */
const REFETCH_INTERVAL_MS = 60_000;
const MAX_REMEMBERED_FETCHES = 10_000;

/** What `/_matrix/key/v2/query` asks: key IDs per server, each with its minimum validity. */
export type KeyQuery = Record<string, Record<string, { minimum_valid_until_ts?: number }>>;

export function createServerKeyService(
  ctx: ServiceContext,
  settings: FederationSettings,
  client: FederationClient,
) {
  const { serverName } = ctx.settings;
  const oldKeys = ctx.oldSigningKeys ?? [];
  const stores = () => ctx.storage.stores;
  let own: ServerKeysJson | null = null;

  /** Our answer, re-signed once half of its validity has passed. */
  function ownKeys(): ServerKeysJson {
    const now = ctx.now();
    if (!own || own.valid_until_ts - now < settings.keyValidityMs / 2)
      own = ownServerKeys(serverName, ctx.signingKey, oldKeys, now + settings.keyValidityMs);
    return own;
  }

  async function store(keys: readonly VerifiedKey[], json: ServerKeysJson): Promise<void> {
    const keyJson = canonicalJson(json);
    const fetchedTs = ctx.now();
    const rows: ServerKeyRow[] = keys.map((k) => ({
      serverName: k.serverName,
      keyId: k.keyId,
      publicKey: base64Unpadded(k.publicKey),
      validUntilTs: k.validUntilTs,
      expiredTs: k.expiredTs,
      fetchedTs,
      keyJson,
    }));
    await stores().serverKeys.upsertServerKeys(rows);
  }

  /** Asks the server itself; false when it did not give a valid answer. */
  async function fetchDirect(server: string): Promise<boolean> {
    try {
      const response = await client.request(server, 'GET', '/_matrix/key/v2/server', {
        unsigned: true,
      });
      if (response.status !== 200) return false;
      const verified = verifyServerKeys(response.body, server);
      if ('error' in verified) return false;
      await store(verified.keys, verified.json);
      return true;
    } catch {
      return false;
    }
  }

  /** Asks each notary in turn, checking the notary's signature as well as the server's own. */
  async function fetchViaNotaries(server: string, keyId: string, minimum: number): Promise<void> {
    for (const notary of settings.trustedKeyServers) {
      if (notary === server || notary === serverName) continue;
      try {
        const response = await client.request(notary, 'POST', '/_matrix/key/v2/query', {
          body: { server_keys: { [server]: { [keyId]: { minimum_valid_until_ts: minimum } } } },
        });
        const answers = (response.body as { server_keys?: unknown }).server_keys;
        if (response.status !== 200 || !Array.isArray(answers)) continue;
        for (const answer of answers) {
          const verified = verifyServerKeys(answer, server);
          if ('error' in verified) continue;
          const notarySigned = await signedByServer(answer as object, notary, ctx.now());
          if (notarySigned) await store(verified.keys, verified.json);
        }
      } catch {
        // the next notary
      }
    }
  }

  /** Whether `obj` carries a valid signature of `server` (its keys fetched directly if needed). */
  async function signedByServer(obj: object, server: string, at: number): Promise<boolean> {
    const signatures = (obj as { signatures?: Record<string, Record<string, string>> })
      .signatures?.[server];
    for (const keyId of Object.keys(signatures ?? {})) {
      const key = await publicKeyFor(server, keyId, at, false);
      if (key && verifyJsonSignature(obj, server, keyId, key)) return true;
    }
    return false;
  }

  const fetching = new Map<string, Promise<boolean>>();
  const lastFetched = new Map<string, number>();
  /**
   * One direct fetch per server at a time (callers arriving meanwhile share it), and none
   * within a minute of the last: a request naming a key nobody has cannot make us fetch
   * again and again.
   */
  function fetchDirectOnce(server: string): Promise<boolean> {
    let pending = fetching.get(server);
    if (!pending) {
      const last = lastFetched.get(server);
      if (last !== undefined && ctx.now() - last < REFETCH_INTERVAL_MS)
        return Promise.resolve(false);
      lastFetched.set(server, ctx.now());
      if (lastFetched.size > MAX_REMEMBERED_FETCHES) {
        const oldest = lastFetched.keys().next().value;
        if (oldest !== undefined) lastFetched.delete(oldest);
      }
      pending = fetchDirect(server).finally(() => fetching.delete(server));
      fetching.set(server, pending);
    }
    return pending;
  }

  async function cachedKey(server: string, keyId: string, at: number): Promise<Buffer | null> {
    const [row] = await stores().serverKeys.selectServerKeys(server, [keyId]);
    if (!row || !keyValidAt(row, at)) return null;
    return decodeBase64Unpadded(row.publicKey);
  }

  /**
   * The public key `server` signed with as `keyId`, valid at time `at`: our own, a cached one,
   * or fetched (directly, then through notaries). Null when none can be had.
   */
  async function publicKeyFor(
    server: string,
    keyId: string,
    at: number,
    viaNotaries = true,
  ): Promise<Buffer | null> {
    if (server === serverName) {
      if (keyId === ctx.signingKey.keyId) return ctx.signingKey.publicKey;
      const old = oldKeys.find((k) => k.keyId === keyId);
      return old && at <= old.expiredTs ? old.publicKey : null;
    }
    const cached = await cachedKey(server, keyId, at);
    if (cached) return cached;
    if (await fetchDirectOnce(server)) {
      const fetched = await cachedKey(server, keyId, at);
      if (fetched) return fetched;
    }
    if (!viaNotaries) return null;
    await fetchViaNotaries(server, keyId, at);
    return cachedKey(server, keyId, at);
  }

  /**
   * The answers for a `/_matrix/key/v2/query`: ours for us; for others what is cached (fetched
   * first when nothing cached is valid long enough), each with our signature added.
   */
  async function query(request: KeyQuery, minimumForAll = 0): Promise<object[]> {
    const answers: object[] = [];
    for (const [server, wanted] of Object.entries(request)) {
      if (server === serverName) {
        answers.push(ownKeys());
        continue;
      }
      const keyIds = Object.keys(wanted);
      const minimum = Math.max(
        ctx.now(),
        minimumForAll,
        ...Object.values(wanted).map((w) =>
          typeof w.minimum_valid_until_ts === 'number' ? w.minimum_valid_until_ts : 0,
        ),
      );
      const select = () =>
        stores().serverKeys.selectServerKeys(server, keyIds.length > 0 ? keyIds : undefined);
      let rows = await select();
      const satisfied =
        rows.length > 0 &&
        (keyIds.length === 0 || keyIds.every((id) => rows.some((r) => r.keyId === id))) &&
        rows.some((r) => r.expiredTs === null && r.validUntilTs >= minimum);
      if (!satisfied && (await fetchDirectOnce(server))) rows = await select();
      for (const json of new Set(rows.map((r) => r.keyJson))) {
        answers.push(signJson(JSON.parse(json) as object, serverName, ctx.signingKey));
      }
    }
    return answers;
  }

  return { ownKeys, publicKeyFor, query };
}

export type ServerKeyService = ReturnType<typeof createServerKeyService>;
