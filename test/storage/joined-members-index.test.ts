/**
 * Migration 0009: `/joined_members` reads a page from two partial indexes (the joined members
 * whose profile fits an index entry, carried in it, and those whose profile is too long for
 * one), merged in user order, on both databases; what it lists follows profile changes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { CompiledQuery, type Compilable } from 'kysely';
import { openDatabase, type DatabaseHandle } from '../../src/storage/database.js';
import {
  joinedProfilesMerged,
  joinedProfilesPart,
  memberListStore,
} from '../../src/storage/member-list-store.js';
import { JOINED_PROFILE_INDEX_BYTES } from '../../src/storage/migrations/0009-joined-profiles-index.js';
import { migrateTo, migrateToLatest } from '../../src/storage/migrations/index.js';
import { registerUser } from '../helpers/client.js';
import { createTestDatabase, forEachDatabase } from '../helpers/databases.js';
import { startServerOn } from '../helpers/server.js';

const C = '/_matrix/client/v3';

/** The longest room ID and user ID the server accepts (255 bytes each). */
const longId = (sigil: string, n: number) =>
  `${sigil}${n.toString().padStart(4, '0')}${'x'.repeat(255 - 1 - 4 - ':example.org'.length)}:example.org`;
const roomId = longId('!', 0);

/** Random hex (which PostgreSQL cannot compress) of exactly `bytes` bytes. */
const hex = (bytes: number) =>
  randomBytes(Math.ceil(bytes / 2))
    .toString('hex')
    .slice(0, bytes);

interface Member {
  userId: string;
  membership: string;
  displayname: string | null;
  avatarUrl: string | null;
}

/**
 * Members around the bound: profiles of 2,048 bytes (carried) and 2,049 (too long), in ASCII
 * and in two-byte characters (the bound is in bytes, not characters), empty ones, and members
 * who are not joined; interleaved in user order so a page holds both kinds.
 */
function members(): Member[] {
  const bound = JOINED_PROFILE_INDEX_BYTES;
  const list: Member[] = [];
  for (let i = 0; i < 40; i++) {
    const userId = longId('@', i);
    const kind = i % 8;
    const member: Member = { userId, membership: 'join', displayname: null, avatarUrl: null };
    if (kind === 0) member.displayname = hex(bound);
    if (kind === 1) [member.displayname, member.avatarUrl] = [hex(bound - 1000), hex(1001)];
    if (kind === 2) member.displayname = 'é'.repeat(bound / 2);
    if (kind === 3) member.displayname = 'é'.repeat(bound / 2) + 'e';
    if (kind === 4) member.avatarUrl = hex(bound + 5000);
    if (kind === 5) member.membership = i % 16 === 5 ? 'leave' : 'invite';
    if (kind === 6) member.displayname = `member ${i}`;
    list.push(member);
  }
  // Enough ordinary members that either database's planner reads the room by index.
  for (let i = 0; i < 2000; i++)
    list.push({
      userId: `@member${i.toString().padStart(4, '0')}:example.org`,
      membership: 'join',
      displayname: `member ${i}`,
      avatarUrl: null,
    });
  return list;
}

async function insertMembers(handle: DatabaseHandle, list: Member[]): Promise<void> {
  const rows = list.map((m, i) => ({
    room_id: roomId,
    user_id: m.userId,
    membership: m.membership,
    event_id: `$${i}`,
    stream_ordering: i + 1,
    displayname: m.displayname,
    avatar_url: m.avatarUrl,
    forgotten: 0,
    client_json: null,
    sender: m.userId,
  }));
  await handle.tx('test-members', async (trx) => {
    for (let i = 0; i < rows.length; i += 500)
      await trx
        .insertInto('room_memberships')
        .values(rows.slice(i, i + 500))
        .execute();
  });
  if (handle.dialect === 'postgres')
    await handle.db.executeQuery(CompiledQuery.raw('VACUUM ANALYZE room_memberships'));
}

/** The plan of one of the store's queries, as the database's own words. */
async function plan(handle: DatabaseHandle, query: Compilable): Promise<string> {
  const { sql, parameters } = query.compile();
  const sqlite = handle.dialect === 'sqlite';
  const explain = sqlite ? 'EXPLAIN QUERY PLAN ' : 'EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ';
  const { rows } = await handle.db.executeQuery<Record<string, unknown>>(
    CompiledQuery.raw(explain + sql, [...parameters]),
  );
  return rows.map((r) => String(sqlite ? r.detail : r['QUERY PLAN'])).join('\n');
}

forEachDatabase('the joined-profiles indexes (migration 0009)', (dialect) => {
  it('are applied, undone and applied again; a page is read from the indexes in user order', async () => {
    const database = await createTestDatabase(dialect);
    try {
      const handle = await openDatabase(database.url);
      try {
        await migrateTo(handle.db as never, '0007-membership-client-json');
        await migrateToLatest(handle.db as never);
        const list = members();
        await insertMembers(handle, list);
        // The page after the 1,990th ordinary member, near the end of the room's list.
        const deep = '@member1990:example.org';
        const fits = await plan(handle, joinedProfilesPart(handle.db, 'fits', roomId, deep, 7));
        const tooLong = await plan(
          handle,
          joinedProfilesPart(handle.db, 'too_long', roomId, '', 1, deep),
        );
        const merged = await plan(handle, joinedProfilesMerged(handle.db, roomId, '', 7));
        if (dialect === 'sqlite') {
          const carried =
            /SEARCH room_memberships USING COVERING INDEX room_memberships_joined_profiles \(room_id=\? AND user_id>\?\)/;
          const long =
            /SEARCH room_memberships USING INDEX room_memberships_joined_long_profiles \(room_id=\? AND membership=\? AND user_id>\? AND user_id<\?\)/;
          assert.match(fits, carried);
          assert.doesNotMatch(fits, /TEMP B-TREE/);
          assert.match(tooLong, long);
          assert.match(merged, carried);
          assert.match(merged, /USING INDEX room_memberships_joined_long_profiles/);
        } else {
          const scan =
            /Index Only Scan using room_memberships_joined_profiles on room_memberships \(actual[^)]*\)\s+Index Cond: \(\(room_id = '[^']*'::text\) AND \(user_id > '@member1990:example.org'::text\)\)\s+Heap Fetches: \d+\s+Buffers: shared hit=(\d+)/.exec(
              fits,
            );
          assert.ok(scan, fits);
          // The scan starts at the page (the root, an inner page, a leaf or two), not at the
          // room's first entry: the room's entries fill about 30 leaf pages.
          assert.ok(Number(scan[1]) <= 6, fits);
          for (const steps of [fits, tooLong, merged])
            assert.doesNotMatch(steps, /Seq Scan|Bitmap|-> {2}Sort /);
          assert.match(tooLong, /Index Scan using room_memberships_joined_long_profiles/);
          assert.match(
            merged,
            /Merge Append[\s\S]*Index Only Scan using room_memberships_joined_profiles/,
          );
          assert.match(merged, /Index Scan using room_memberships_joined_long_profiles/);
        }

        // Every joined member, with the profile as written, in pages of 7 across both indexes.
        const store = memberListStore(handle.db, handle.dialect);
        const listed: Member[] = [];
        let after = '';
        for (;;) {
          const page = await store.selectJoinedProfiles(roomId, after, 7);
          assert.ok(page.length <= 7);
          listed.push(...page.map((r) => ({ ...r, membership: 'join' })));
          const last = page[page.length - 1];
          if (!last) break;
          after = last.userId;
        }
        const joined = list.filter((m) => m.membership === 'join');
        assert.equal(listed.length, joined.length);
        assert.deepEqual(listed, joined);
      } finally {
        await handle.close();
      }
    } finally {
      await database.drop();
    }
  });

  it('/joined_members lists the longest display name and avatar the API allows, after a profile change', async () => {
    const database = await createTestDatabase(dialect);
    const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-joined-index-'));
    const server = await startServerOn(database, dataDir);
    try {
      const alice = await registerUser(server);
      const created = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
        token: alice.accessToken,
        body: {},
      });
      const roomId = created.body.room_id;
      const name = 'n'.repeat(256);
      const avatar = `mxc://example.org/${'a'.repeat(900)}`;
      const profile = `${C}/profile/${encodeURIComponent(alice.userId)}`;
      for (const [field, value] of [
        ['displayname', name],
        ['avatar_url', avatar],
      ] as const) {
        const put = await server.request('PUT', `${profile}/${field}`, {
          token: alice.accessToken,
          body: { [field]: value },
        });
        assert.equal(put.status, 200, JSON.stringify(put.body));
      }
      const joined = await server.request<{
        joined: Record<string, { display_name?: string; avatar_url?: string }>;
      }>('GET', `${C}/rooms/${roomId}/joined_members`, { token: alice.accessToken });
      assert.equal(joined.status, 200);
      assert.deepEqual(joined.body.joined[alice.userId], {
        display_name: name,
        avatar_url: avatar,
      });
    } finally {
      await server.close();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
