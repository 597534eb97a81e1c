/**
 * `userOfServer`: whether a user ID belongs to a server, by the exact server part, the same on
 * both databases — not by `LIKE '%:server'`, which ignores case on SQLite and reads `_` and
 * `%` in a server name as wildcards.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase, type DatabaseHandle } from '../../src/storage/database.js';
import { userNotOfServer, userOfServer } from '../../src/storage/user-server.js';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';

const USERS = [
  '@a:test_local',
  '@b:testXlocal',
  '@c:test.local',
  '@d:TEST.LOCAL',
  '@e:Test.Local',
  '@f:50%.example',
  '@g:500.example',
  '@h:127.0.0.1:8448',
  '@i:127_0_0_1:8448',
  '@j:other.test_local',
  '@k:s',
];

const CASES: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['test_local', ['@a:test_local']],
  ['test.local', ['@c:test.local']],
  ['TEST.LOCAL', ['@d:TEST.LOCAL']],
  ['50%.example', ['@f:50%.example']],
  ['127_0_0_1:8448', ['@i:127_0_0_1:8448']],
  ['127.0.0.1:8448', ['@h:127.0.0.1:8448']],
  ['s', ['@k:s']],
  ['a-much-longer-server-name-than-any-user-id.example', []],
];

forEachDatabase('user IDs of a server: an exact match of the server part', (dialect) => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  before(async () => {
    database = await createTestDatabase(dialect);
    handle = await openDatabase(database.url, { migrate: false, poolSize: 1 });
    await sql`CREATE TABLE users_of_servers (user_id TEXT NOT NULL)`.execute(handle.db);
    for (const userId of USERS)
      await sql`INSERT INTO users_of_servers (user_id) VALUES (${userId})`.execute(handle.db);
  });
  after(async () => {
    await handle?.close();
    await database?.drop();
  });

  for (const [server, expected] of CASES)
    it(`users of ${server}`, async () => {
      const select = (where: ReturnType<typeof userOfServer>) =>
        sql<{
          user_id: string;
        }>`SELECT user_id FROM users_of_servers WHERE ${where} ORDER BY user_id`.execute(handle.db);
      const of = (await select(userOfServer('user_id', server))).rows.map((r) => r.user_id);
      assert.deepEqual(of, expected);
      const notOf = (await select(userNotOfServer('user_id', server))).rows.map((r) => r.user_id);
      assert.deepEqual(
        notOf,
        USERS.filter((u) => !expected.includes(u)),
      );
    });
});
