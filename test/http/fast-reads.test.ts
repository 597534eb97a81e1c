/**
 * The fast forms of the v1 mutual_rooms paths, /joined_members and /joined_rooms
 * (http.fast_reads) answer byte for byte as the Fastify routes do: same status, headers and body, page after page. A request carrying an
 * `access_token` query parameter is always the Fastify route's (the header still
 * authenticates it), which gives both answers from one server; a server with fast_reads off
 * answers the same pages. Errors are the Fastify route's in every case (the mutual-rooms
 * suite, run with fast reads on, checks each of them).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { expectError } from '../helpers/assertions.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { startServerOn, type TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
const PATHS = ['/_matrix/client/v1/mutual_rooms', '/_matrix/client/v1/user/mutual_rooms'];
const ENV = { COMMONS_MUTUAL_ROOMS_BATCH_SIZE: '2' };

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A GET's status, headers (but Date, which moves) and body text. */
async function raw(server: TestServer, url: string, token: string): Promise<RawAnswer> {
  const res = await fetch(server.url + url, { headers: { Authorization: `Bearer ${token}` } });
  const headers: Record<string, string> = {};
  res.headers.forEach((value, name) => {
    if (name !== 'date') headers[name] = value;
  });
  return { status: res.status, headers, body: await res.text() };
}

forEachDatabase('fast reads', (dialect) => {
  let database: TestDatabase;
  let dataDir: string;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  const rooms: string[] = [];

  before(async () => {
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
    server = await startServerOn(database, dataDir, ENV);
    alice = await registerUser(server);
    bob = await registerUser(server);
    for (let i = 0; i < 5; i++) {
      const created = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
        token: alice.accessToken,
        body: { preset: 'public_chat' },
      });
      assert.equal(created.status, 200);
      rooms.push(created.body.room_id);
      const joined = await server.request(
        'POST',
        `${C}/join/${encodeURIComponent(created.body.room_id)}`,
        { token: bob.accessToken, body: {} },
      );
      assert.equal(joined.status, 200);
    }
  });
  after(async () => {
    await server.close();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Every page of `requestPath`, each fetched both ways, asserted equal; the rooms seen. */
  async function walkBothWays(on: TestServer, requestPath: string): Promise<string[]> {
    const seen: string[] = [];
    let from: string | undefined;
    for (let page = 0; page < 10; page++) {
      const query = `?user_id=${encodeURIComponent(bob.userId)}${from ? `&from=${from}` : ''}`;
      const fast = await raw(on, requestPath + query, alice.accessToken);
      const routed = await raw(on, `${requestPath + query}&access_token=x`, alice.accessToken);
      assert.equal(fast.status, 200, fast.body);
      assert.deepEqual(fast, routed, `${requestPath}${query}: the two answers differ`);
      const body = JSON.parse(fast.body) as { joined: string[]; next_batch?: string };
      seen.push(...body.joined);
      if (body.next_batch === undefined) return seen;
      from = body.next_batch;
    }
    assert.fail('more than 10 pages');
  }

  it('answers every page as the Fastify route does, on both v1 paths', async () => {
    for (const requestPath of PATHS) {
      const seen = await walkBothWays(server, requestPath);
      assert.deepEqual([...seen].sort(), [...rooms].sort());
    }
  });

  it('leaves errors to the Fastify route', async () => {
    const url = `${PATHS[0]}?user_id=${encodeURIComponent(alice.userId)}`;
    const own = await server.request('GET', url, { token: alice.accessToken });
    expectError(own, 400, 'M_INVALID_PARAM');
    const badFrom = `${PATHS[0]}?user_id=${encodeURIComponent(bob.userId)}&from=nonsense`;
    expectError(
      await server.request('GET', badFrom, { token: alice.accessToken }),
      400,
      'M_INVALID_PARAM',
    );
    expectError(await server.request('GET', url, { token: 'nonsense' }), 401, 'M_UNKNOWN_TOKEN');
  });

  it('answers /joined_members and /joined_rooms as the Fastify routes do, and follows member events', async () => {
    const room = rooms[0] as string;
    const members = `${C}/rooms/${encodeURIComponent(room)}/joined_members`;
    const r0Members = `/_matrix/client/r0/rooms/${encodeURIComponent(room)}/joined_members`;
    for (const [url, user] of [
      [members, alice],
      [r0Members, bob],
      [`${C}/joined_rooms`, bob],
      ['/_matrix/client/r0/joined_rooms', alice],
    ] as const) {
      // The first answer is read (and kept); the next ones are the kept body's fast form.
      const read = await raw(server, url, user.accessToken);
      const fast = await raw(server, url, user.accessToken);
      const routed = await raw(server, `${url}?access_token=x`, user.accessToken);
      assert.equal(fast.status, 200, fast.body);
      // (The first may have been streamed, without a Content-Length.)
      assert.deepEqual(
        [fast.status, fast.body, fast.headers['content-type']],
        [read.status, read.body, read.headers['content-type']],
        `${url}: the kept answer differs`,
      );
      assert.deepEqual(fast, routed, `${url}: the two answers differ`);
    }
    // Someone never in the room is refused though the room's body is held.
    const carol = await registerUser(server);
    expectError(
      await server.request('GET', members, { token: carol.accessToken }),
      403,
      'M_FORBIDDEN',
    );
    // A member who leaves is refused at once, and is gone from the others' answers and
    // from their own list of rooms.
    const bobRooms = async () =>
      (
        JSON.parse((await raw(server, `${C}/joined_rooms`, bob.accessToken)).body) as {
          joined_rooms: string[];
        }
      ).joined_rooms;
    assert.ok((await bobRooms()).includes(room));
    const left = await server.request('POST', `${C}/rooms/${encodeURIComponent(room)}/leave`, {
      token: bob.accessToken,
      body: {},
    });
    assert.equal(left.status, 200);
    expectError(
      await server.request('GET', members, { token: bob.accessToken }),
      403,
      'M_FORBIDDEN',
    );
    const after = JSON.parse((await raw(server, members, alice.accessToken)).body) as {
      joined: Record<string, unknown>;
    };
    assert.deepEqual(Object.keys(after.joined), [alice.userId]);
    assert.ok(!(await bobRooms()).includes(room));
    const rejoined = await server.request('POST', `${C}/join/${encodeURIComponent(room)}`, {
      token: bob.accessToken,
      body: {},
    });
    assert.equal(rejoined.status, 200);
    assert.ok((await bobRooms()).includes(room));
    const again = JSON.parse((await raw(server, members, bob.accessToken)).body) as {
      joined: Record<string, unknown>;
    };
    assert.deepEqual(Object.keys(again.joined).sort(), [alice.userId, bob.userId].sort());
  });

  it('answers the same with http.fast_reads off', async () => {
    const first = `${PATHS[0]}?user_id=${encodeURIComponent(bob.userId)}`;
    const before = await raw(server, first, alice.accessToken);
    await server.close();
    server = await startServerOn(database, dataDir, { ...ENV, COMMONS_HTTP_FAST_READS: 'false' });
    const off = await raw(server, first, alice.accessToken);
    assert.equal(off.status, 200, off.body);
    assert.deepEqual(off.headers, before.headers);
    const [beforeBody, offBody] = [before.body, off.body].map(
      (b) => JSON.parse(b) as { joined: string[]; count: number; next_batch?: string },
    );
    assert.deepEqual(offBody?.joined, beforeBody?.joined);
    assert.equal(offBody?.count, beforeBody?.count);
    assert.equal(typeof offBody?.next_batch, 'string');
    const seen = await walkBothWays(server, PATHS[1] as string);
    assert.deepEqual([...seen].sort(), [...rooms].sort());
  });
});
