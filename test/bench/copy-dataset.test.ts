/**
 * The full profile's PostgreSQL dataset is the SQLite build loaded row for row
 * (bench/copy-dataset.ts): on a tiny dataset, every table arrives whole and equal, and
 * Commons serves the copy with the SQLite build's keys and tokens.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { copySqliteToPostgres } from '../../bench/copy-dataset.js';
import { generateDataset, SERVER_NAME } from '../../bench/generate.js';
import { PROFILES } from '../../bench/profiles.js';
import { createTestDatabase, testDialects } from '../helpers/databases.js';
import { startServerOn } from '../helpers/server.js';

const postgresAvailable = testDialects().includes('postgres');

it(
  'loads a SQLite dataset into PostgreSQL row for row, and Commons serves it',
  { skip: postgresAvailable ? false : 'PostgreSQL is not configured for this run' },
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'commons-copy-'));
    const source = await createTestDatabase('sqlite');
    const target = await createTestDatabase('postgres');
    try {
      const manifest = await generateDataset({
        url: source.url,
        dataDir: dir,
        dataset: PROFILES.tiny.dataset,
        profile: 'tiny',
        seed: 5,
      });
      const sqliteFile = source.url.slice('sqlite:'.length);
      await copySqliteToPostgres(sqliteFile, target.url, () => {});

      const sqlite = new SqliteDatabase(sqliteFile, { readonly: true });
      const user = manifest.sharing.a;
      const joinedCount = sqlite
        .prepare<[string], number>(
          "SELECT count(*) FROM room_memberships WHERE user_id = ? AND membership = 'join'",
        )
        .pluck()
        .get(user.userId);
      assert.ok((joinedCount ?? 0) > 0);
      const client = new pg.Client({ connectionString: target.url });
      await client.connect();
      try {
        // SQLite's full-text index tables are not copied: PostgreSQL indexes the rows itself.
        const tables = sqlite
          .prepare<[], string>(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'kysely_%' AND name NOT LIKE 'event_search_fts%'",
          )
          .pluck()
          .all();
        assert.ok(tables.includes('events') && tables.includes('room_memberships'));
        for (const table of tables) {
          const expected = sqlite.prepare(`SELECT count(*) FROM "${table}"`).pluck().get();
          const { rows } = await client.query<{ n: string }>(
            `SELECT count(*) AS n FROM "${table}"`,
          );
          assert.equal(Number(rows[0]?.n), expected, table);
        }
        const events = sqlite
          .prepare<[], { event_id: string; pdu: string; client_json: string | null }>(
            'SELECT event_id, pdu, client_json FROM events ORDER BY stream_ordering',
          )
          .all();
        const copied = await client.query<{
          event_id: string;
          pdu: string;
          client_json: string | null;
        }>('SELECT event_id, pdu, client_json FROM events ORDER BY stream_ordering');
        assert.deepEqual(copied.rows, events);
      } finally {
        sqlite.close();
        await client.end();
      }

      // Commons on the copy, with the build's data_dir and server name: the manifest's tokens work.
      const server = await startServerOn(target, dir, { COMMONS_SERVER_NAME: SERVER_NAME });
      try {
        const res = await server.request<{ user_id: string }>(
          'GET',
          '/_matrix/client/v3/account/whoami',
          { token: user.accessToken },
        );
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.user_id, user.userId);
        const rooms = await server.request<{ joined_rooms: string[] }>(
          'GET',
          '/_matrix/client/v3/joined_rooms',
          { token: user.accessToken },
        );
        assert.equal(rooms.body.joined_rooms.length, joinedCount);
      } finally {
        await server.close();
      }
    } finally {
      await source.drop();
      await target.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
