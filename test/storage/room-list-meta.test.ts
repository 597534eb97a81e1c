/**
 * Migration 0070: `room_list_meta` (what orders and filters sliding sync's lists) is kept with
 * every event by an event deriver, and the migration's backfill from existing events writes
 * the same rows, on both databases.
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

async function metaRows(url: string) {
  const handle = await openDatabase(url);
  try {
    const rows = await handle.db
      .selectFrom('room_list_meta')
      .selectAll()
      .orderBy('room_id')
      .execute();
    return rows.map((r) => ({
      ...r,
      bump_stamp: Number(r.bump_stamp),
      encrypted: Number(r.encrypted),
    }));
  } finally {
    await handle.close();
  }
}

forEachDatabase('migration 0070: room_list_meta', (dialect) => {
  it('the deriver keeps bump stamps, room types and encryption; the backfill writes the same', async () => {
    const database = await createTestDatabase(dialect);
    const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
    let server = await startServerOn(database, dataDir);
    try {
      const alice = await registerUser(server);
      const create = async (body: Record<string, unknown>) => {
        const res = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
          token: alice.accessToken,
          body,
        });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return res.body.room_id;
      };
      const plain = await create({ preset: 'private_chat' });
      const space = await create({ creation_content: { type: 'm.space' } });
      const encrypted = await create({
        initial_state: [
          {
            type: 'm.room.encryption',
            state_key: '',
            content: { algorithm: 'm.megolm.v1.aes-sha2' },
          },
        ],
      });
      const sent = await server.request<{ event_id: string }>(
        'PUT',
        `${C}/rooms/${encodeURIComponent(plain)}/send/m.room.message/1`,
        { token: alice.accessToken, body: { msgtype: 'm.text', body: 'bump' } },
      );
      assert.equal(sent.status, 200);
      // A state event that is not a bump event leaves the stamp where it was.
      const topic = await server.request(
        'PUT',
        `${C}/rooms/${encodeURIComponent(plain)}/state/m.room.topic/`,
        { token: alice.accessToken, body: { topic: 'no bump' } },
      );
      assert.equal(topic.status, 200);
      await server.close();

      const before = await metaRows(database.url);
      const byId = new Map(before.map((r) => [r.room_id, r]));
      assert.equal(byId.get(space)?.room_type, 'm.space');
      assert.equal(byId.get(plain)?.room_type, null);
      assert.equal(byId.get(encrypted)?.encrypted, 1);
      assert.equal(byId.get(plain)?.encrypted, 0);
      assert.ok((byId.get(plain)?.bump_stamp ?? 0) > (byId.get(encrypted)?.bump_stamp ?? 0));

      const handle = await openDatabase(database.url);
      try {
        const db = handle.db as unknown as Kysely<unknown>;
        await migrateTo(db, '0012-server-metadata');
        await migrateToLatest(db);
      } finally {
        await handle.close();
      }
      assert.deepEqual(await metaRows(database.url), before);
      server = await startServerOn(database, dataDir);
    } finally {
      await server.close().catch(() => {});
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
