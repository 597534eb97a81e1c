/**
 * Each event's client form is stored when it is written (events.client_json), filled in for
 * older events by migration 0006, and cleared by a redaction; /members serves it as stored
 * and presents redacted member events from the PDU.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import type { Kysely } from 'kysely';
import { toClientEvent } from '../../src/core/client-event.js';
import type { Pdu } from '../../src/core/pdu.js';
import { openDatabase } from '../../src/storage/database.js';
import { migrateTo, migrateToLatest } from '../../src/storage/migrations/index.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { createTestDatabase, forEachDatabase } from '../helpers/databases.js';
import { startServerOn, type TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';

interface StoredRow {
  event_id: string;
  room_id: string;
  pdu: string;
  redacted_by: string | null;
  client_json: string | null;
}

interface MembershipRow {
  user_id: string;
  event_id: string;
  client_json: string | null;
  sender: string | null;
}

async function stored(url: string): Promise<{ events: StoredRow[]; memberships: MembershipRow[] }> {
  const handle = await openDatabase(url);
  try {
    const events = await handle.db
      .selectFrom('events')
      .select(['event_id', 'room_id', 'pdu', 'redacted_by', 'client_json'])
      .orderBy('stream_ordering')
      .execute();
    const memberships = await handle.db
      .selectFrom('room_memberships')
      .select(['user_id', 'event_id', 'client_json', 'sender'])
      .orderBy('room_id')
      .orderBy('user_id')
      .execute();
    return { events, memberships };
  } finally {
    await handle.close();
  }
}

async function ok<T = Record<string, unknown>>(
  server: TestServer,
  method: string,
  urlPath: string,
  user: TestUser,
  body?: unknown,
): Promise<T> {
  const res = await server.request<T>(method, urlPath, { token: user.accessToken, body });
  assert.equal(res.status, 200, `${method} ${urlPath}: ${JSON.stringify(res.body)}`);
  return res.body;
}

forEachDatabase('stored client JSON of events', (dialect) => {
  it('equals the client form at write time and after the backfill; a redaction clears it; /members serves both kinds', async () => {
    const database = await createTestDatabase(dialect);
    const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-client-json-'));
    let server = await startServerOn(database, dataDir);
    try {
      const alice = await registerUser(server);
      const bob = await registerUser(server);
      const { room_id: roomId } = await ok<{ room_id: string }>(
        server,
        'POST',
        `${C}/createRoom`,
        alice,
        { preset: 'public_chat' },
      );
      const room = encodeURIComponent(roomId);
      await ok(server, 'POST', `${C}/rooms/${room}/join`, bob, {});
      const message = await ok<{ event_id: string }>(
        server,
        'PUT',
        `${C}/rooms/${room}/send/m.room.message/t1`,
        alice,
        { msgtype: 'm.text', body: 'hello' },
      );
      // A display name change re-sends Bob's member event; find its ID in the member list.
      await ok(server, 'PUT', `${C}/profile/${encodeURIComponent(bob.userId)}/displayname`, bob, {
        displayname: 'Bob the Builder',
      });
      const listed = await ok<{
        chunk: Array<{ state_key: string; event_id: string; content: object }>;
      }>(server, 'GET', `${C}/rooms/${room}/members`, alice);
      const bobRenamed = listed.chunk.find((e) => e.state_key === bob.userId);
      assert.deepEqual(bobRenamed?.content, { membership: 'join', displayname: 'Bob the Builder' });
      const renamed = { event_id: bobRenamed.event_id };
      for (const [i, target] of [message.event_id, renamed.event_id].entries()) {
        await ok(
          server,
          'PUT',
          `${C}/rooms/${room}/redact/${encodeURIComponent(target)}/r${i}`,
          alice,
          {
            reason: 'test',
          },
        );
      }
      const membersBefore = await ok<{ chunk: Array<Record<string, unknown>> }>(
        server,
        'GET',
        `${C}/rooms/${room}/members`,
        alice,
      );
      await server.close();

      // As written: the client form of every unredacted event; NULL for the redacted two.
      const before = await stored(database.url);
      const written = before.events;
      assert.ok(written.length > 8, `${written.length} events`);
      for (const row of written) {
        if (row.redacted_by !== null) {
          assert.equal(row.client_json, null, `${row.event_id} is redacted`);
          continue;
        }
        assert.equal(typeof row.client_json, 'string', row.event_id);
        const pdu = JSON.parse(row.pdu) as Pdu;
        assert.deepEqual(
          JSON.parse(row.client_json as string),
          toClientEvent({ eventId: row.event_id, roomId: row.room_id, pdu }),
        );
      }
      assert.deepEqual(
        written
          .filter((r) => r.redacted_by !== null)
          .map((r) => r.event_id)
          .sort(),
        [message.event_id, renamed.event_id].sort(),
      );

      // Current memberships carry their event's client form (none for Bob's redacted one)
      // and its sender.
      assert.equal(before.memberships.length, 2);
      for (const membership of before.memberships) {
        const event = written.find((e) => e.event_id === membership.event_id);
        assert.ok(event, membership.event_id);
        assert.equal(membership.client_json, event.client_json);
        assert.equal(membership.sender, (JSON.parse(event.pdu) as Pdu).sender);
      }
      assert.equal(before.memberships.find((m) => m.user_id === bob.userId)?.client_json, null);

      // Down to the migration before (the column goes), then up: the backfill writes the same.
      const handle = await openDatabase(database.url);
      try {
        const db = handle.db as unknown as Kysely<unknown>;
        await migrateTo(db, '0005-mutual-rooms-revision');
        await migrateToLatest(db);
      } finally {
        await handle.close();
      }
      assert.deepEqual(await stored(database.url), before);

      // /members after the upgrade answers as before: Bob's redacted member event is
      // presented redacted (no display name), with the redaction in unsigned.
      server = await startServerOn(database, dataDir);
      const membersAfter = await ok<{ chunk: Array<Record<string, unknown>> }>(
        server,
        'GET',
        `${C}/rooms/${room}/members`,
        alice,
      );
      assert.deepEqual(membersAfter, membersBefore);
      const bobEvent = membersAfter.chunk.find((e) => e.state_key === bob.userId);
      assert.ok(bobEvent, 'Bob is listed');
      assert.equal(bobEvent.event_id, renamed.event_id);
      assert.deepEqual(bobEvent.content, { membership: 'join' });
      const unsigned = bobEvent.unsigned as { redacted_because?: { type?: string } };
      assert.equal(unsigned.redacted_because?.type, 'm.room.redaction');
      const aliceEvent = membersAfter.chunk.find((e) => e.state_key === alice.userId);
      assert.deepEqual(
        aliceEvent?.content && (aliceEvent.content as { membership?: string }).membership,
        'join',
      );
    } finally {
      await server.close().catch(() => {});
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
