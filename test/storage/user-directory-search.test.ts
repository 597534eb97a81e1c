/**
 * The directory's search against the rule it implements, on enough users that every list of
 * the store's query is taken both ways: a word common enough that room-mates are found by
 * probing the requester's rooms' members, and words rare enough to be read whole. The
 * expected answer is computed here by brute force from the same rows (visibility: the
 * requester, room-mates in any joined room, members of public rooms, local users with
 * search_all; order: user ID bytes; cut at the limit).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Kysely } from 'kysely';
import { directoryTerms, searchWords } from '../../src/core/user-directory.js';
import { openDatabase } from '../../src/storage/database.js';
import { storesFor } from '../../src/storage/index.js';
import { migrateToLatest } from '../../src/storage/migrations/index.js';
import { createTestDatabase, forEachDatabase } from '../helpers/databases.js';

const USERS = 420;
const LOCAL = 'test.local';

forEachDatabase('user directory search, every path against brute force', (dialect) => {
  it('answers as the visibility rule says, in user ID order, for common and rare words', async () => {
    const database = await createTestDatabase(dialect);
    const handle = await openDatabase(database.url);
    try {
      await migrateToLatest(handle.db as unknown as Kysely<unknown>);
      const stores = storesFor(handle.db, handle.dialect, async () => undefined, 'test');
      // Users: local ones (some remote: every 7th), all named "Common …", a few "Rare …".
      const users = Array.from({ length: USERS }, (_, i) => {
        const server = i % 7 === 3 ? 'remote.example' : LOCAL;
        return {
          userId: `@u${i}:${server}`,
          name: `Common ${i % 11 === 0 ? 'Rare' : 'Name'} ${i}`,
          local: server === LOCAL,
        };
      });
      for (const user of users) {
        if (user.local)
          await stores.accounts.insertUser({
            userId: user.userId,
            localpart: user.userId.slice(1, user.userId.indexOf(':')),
            passwordHash: null,
            isAdmin: false,
            displayname: user.name,
            createdTs: 0,
          });
        else await stores.userDirectory.upsertUser(user.userId, user.name, null);
      }
      const requester = users[0]?.userId ?? '';
      // Rooms: the requester with every 3rd user in private rooms, every 5th in a public room,
      // every 13th in a private room without the requester.
      const members: { room: string; userId: string }[] = [];
      for (const [i, user] of users.entries()) {
        if (i % 3 === 0) members.push({ room: `!p${i % 2}:${LOCAL}`, userId: user.userId });
        if (i % 5 === 0) members.push({ room: `!pub:${LOCAL}`, userId: user.userId });
        if (i % 13 === 0) members.push({ room: `!other:${LOCAL}`, userId: user.userId });
      }
      members.push({ room: `!p1:${LOCAL}`, userId: requester });
      await handle.db
        .insertInto('room_memberships')
        .values(
          members.map((m, n) => ({
            room_id: m.room,
            user_id: m.userId,
            membership: 'join',
            event_id: `$e${n}`,
            stream_ordering: n,
            forgotten: 0,
          })),
        )
        .execute();
      await stores.userDirectory.setRoomPublic(`!pub:${LOCAL}`, true);

      const roomsOf = (userId: string) =>
        new Set(members.filter((m) => m.userId === userId).map((m) => m.room));
      const mine = roomsOf(requester);
      const visible = (userId: string, searchAll: boolean) => {
        const rooms = roomsOf(userId);
        return (
          userId === requester ||
          [...rooms].some((room) => mine.has(room)) ||
          rooms.has(`!pub:${LOCAL}`) ||
          (searchAll && userId.endsWith(`:${LOCAL}`))
        );
      };
      const bytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
      for (const term of [
        'common',
        'co',
        'name',
        'rare',
        'u1',
        'u33',
        'remote',
        'common rare',
        'zz',
      ])
        for (const searchAll of [false, true])
          for (const limit of [3, 11, 500]) {
            const words = searchWords(term);
            const expected = users
              .filter((user) =>
                words.every((word) =>
                  directoryTerms(user.userId, user.name).some((t) => t.startsWith(word)),
                ),
              )
              .filter((user) => visible(user.userId, searchAll))
              .map((user) => user.userId)
              .sort(bytes)
              .slice(0, limit);
            const found = await stores.userDirectory.searchUsers(
              requester,
              words,
              limit,
              searchAll,
            );
            assert.deepEqual(
              found.map((row) => row.userId),
              expected,
              `${term} search_all=${searchAll} limit=${limit}`,
            );
          }
    } finally {
      await handle.close();
      await database.drop();
    }
  });
});
