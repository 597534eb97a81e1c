/**
 * Migrations 0050 and 0051 find the relations (and threads) and the searchable text of events
 * stored before them: down to the migration before and up again, the rows equal those the
 * derivers wrote, and a redacted event stays left out.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import type { Kysely } from 'kysely';
import { openDatabase } from '../../src/storage/database.js';
import { migrateTo, migrateToLatest } from '../../src/storage/migrations/index.js';
import { registerUser } from '../helpers/client.js';
import { createTestDatabase, forEachDatabase } from '../helpers/databases.js';
import { startServerOn } from '../helpers/server.js';

const C = '/_matrix/client/v3';

async function relationRows(url: string) {
  const handle = await openDatabase(url);
  try {
    const relations = await handle.db
      .selectFrom('event_relations')
      .selectAll()
      .orderBy('stream_ordering')
      .execute();
    const threads = await handle.db
      .selectFrom('event_threads')
      .selectAll()
      .orderBy('root_id')
      .execute();
    const search = await handle.db
      .selectFrom('event_search')
      .selectAll()
      .orderBy('stream_ordering')
      .execute();
    return {
      search: search.map((t) => ({ ...t, stream_ordering: Number(t.stream_ordering) })),
      relations: relations.map((r) => ({ ...r, stream_ordering: Number(r.stream_ordering) })),
      threads: threads.map((t) => ({ ...t, latest_ordering: Number(t.latest_ordering) })),
    };
  } finally {
    await handle.close();
  }
}

forEachDatabase(
  'event relations and search text: the backfills of migrations 0050 and 0051',
  (dialect) => {
    it('writes the rows the deriver wrote, without redacted relations', async () => {
      const database = await createTestDatabase(dialect);
      const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-relations-'));
      const server = await startServerOn(database, dataDir);
      let txn = 0;
      try {
        const alice = await registerUser(server);
        const created = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
          token: alice.accessToken,
          body: {},
        });
        const room = encodeURIComponent(created.body.room_id);
        const send = async (type: string, content: Record<string, unknown>) => {
          const res = await server.request<{ event_id: string }>(
            'PUT',
            `${C}/rooms/${room}/send/${type}/t${++txn}`,
            { token: alice.accessToken, body: content },
          );
          assert.equal(res.status, 200);
          return res.body.event_id;
        };
        const rel = (relType: string, eventId: string) => ({
          body: 'x',
          'm.relates_to': { rel_type: relType, event_id: eventId },
        });
        const root = await send('m.room.message', { body: 'root' });
        const a = await send('m.room.message', rel('m.thread', root));
        const b = await send('m.room.message', rel('m.thread', root));
        await send('m.reaction', {
          'm.relates_to': { rel_type: 'm.annotation', event_id: root, key: 'k' },
        });
        await send('m.room.message', rel('m.replace', a));
        await send('m.room.message', { body: 'says "m.relates_to" in its body' });
        const redacted = await server.request(
          'PUT',
          `${C}/rooms/${room}/redact/${encodeURIComponent(b)}/r1`,
          { token: alice.accessToken, body: {} },
        );
        assert.equal(redacted.status, 200);
        await server.close();

        const written = await relationRows(database.url);
        assert.equal(written.relations.length, 3);
        // root, a, the replacement and the plain message; b was redacted.
        assert.equal(written.search.length, 4);
        assert.ok(!written.search.some((r) => r.event_id === b));
        assert.ok(!written.relations.some((r) => r.event_id === b));
        assert.deepEqual(
          written.threads.map((t) => [t.root_id, t.latest_event_id]),
          [[root, a]],
        );

        const handle = await openDatabase(database.url);
        try {
          const db = handle.db as unknown as Kysely<unknown>;
          await migrateTo(db, '0012-server-metadata');
          await migrateToLatest(db);
        } finally {
          await handle.close();
        }
        assert.deepEqual(await relationRows(database.url), written);
      } finally {
        await server.close().catch(() => {});
        await database.drop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  },
);
