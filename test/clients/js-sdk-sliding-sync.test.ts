/**
 * matrix-js-sdk's sliding sync client (its `SlidingSync`, MSC4186) living off Commons: Alice
 * starts with `startClient({ slidingSync })` over one list of her rooms; Bob's room (with a
 * message) appears with its name and members, a message Bob sends arrives through the
 * long-poll, and one Alice sends reaches Bob through /sync. Every wait is on the SDK's own
 * events, with a deadline that fails naming what was awaited.
 */
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { after, before, it } from 'node:test';
import type { MatrixClient } from 'matrix-js-sdk';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { eventually } from '../helpers/eventually.js';
import { createSdkClient, loadMatrixJsSdk } from '../helpers/matrix-js-sdk.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
const DEADLINE_MS = 15_000;
const ROOM_NAME = 'js-sdk sliding room';

/** Resolves with `check()`'s first truthy value, tested now and on each event; rejects after a deadline. */
function until<T>(
  what: string,
  sources: ReadonlyArray<readonly [object, string]>,
  check: () => T | undefined | null | false,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const emitters = sources.map(([emitter, event]) => [emitter as EventEmitter, event] as const);
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      for (const [emitter, event] of emitters) emitter.off(event, listener);
      settle();
    };
    const listener = () => {
      const value = check();
      if (value) finish(() => resolve(value));
    };
    const timer = setTimeout(
      () => finish(() => reject(new Error(`timed out waiting for ${what}`))),
      DEADLINE_MS,
    );
    for (const [emitter, event] of emitters) emitter.on(event, listener);
    listener();
  });
}

forEachDatabase('matrix-js-sdk: sliding sync (MSC4186)', (dialect) => {
  let server: TestServer;
  let aliceUser: TestUser;
  let bobUser: TestUser;
  let alice: MatrixClient;
  let roomId: string;

  const http = async (user: TestUser, method: string, path: string, body?: unknown) => {
    const res = await server.request<Record<string, unknown>>(method, `${C}${path}`, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, `${method} ${path}: ${JSON.stringify(res.body)}`);
    return res.body;
  };

  before(async () => {
    server = await startTestServer(dialect);
    aliceUser = await registerUser(server);
    bobUser = await registerUser(server);
    const created = await http(bobUser, 'POST', '/createRoom', {
      preset: 'public_chat',
      name: ROOM_NAME,
    });
    roomId = created.room_id as string;
    await http(aliceUser, 'POST', `/join/${encodeURIComponent(roomId)}`, {});
    await http(bobUser, 'PUT', `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/1`, {
      msgtype: 'm.text',
      body: 'before Alice started',
    });
  });

  after(async () => {
    alice?.stopClient();
    await server?.close();
  });

  it('lists the room with its name, timeline and members, and follows it live', async () => {
    const sdk = await loadMatrixJsSdk();
    const { SlidingSync } = await import('matrix-js-sdk/lib/sliding-sync.js');
    alice = await createSdkClient(server, aliceUser);
    const lists = new Map([
      [
        'all',
        {
          ranges: [[0, 19]],
          timeline_limit: 10,
          required_state: [
            ['m.room.create', ''],
            ['m.room.name', ''],
            ['m.room.member', '$LAZY'],
            ['m.room.member', '$ME'],
            ['m.room.power_levels', ''],
          ],
        },
      ],
    ]);
    const slidingSync = new SlidingSync(
      server.url,
      lists,
      { timeline_limit: 10, required_state: [['*', '*']] },
      alice,
      5000,
    );
    await alice.startClient({ slidingSync });

    const room = await until(
      'the room in the sliding sync list',
      [[alice, sdk.ClientEvent.Room]],
      () => alice.getRoom(roomId),
    );
    await until('its name', [[alice, sdk.RoomEvent.Name]], () => room.name === ROOM_NAME);
    await until('Bob’s first message', [[alice, sdk.RoomEvent.Timeline]], () =>
      room
        .getLiveTimeline()
        .getEvents()
        .some((e) => e.getContent().body === 'before Alice started'),
    );
    await until(
      'both members',
      [[alice, sdk.RoomStateEvent.Members]],
      () =>
        room.getMember(bobUser.userId)?.membership === 'join' &&
        room.getMember(aliceUser.userId)?.membership === 'join',
    );

    // Live: Bob's message arrives through the long-poll.
    const waiting = until('Bob’s live message', [[alice, sdk.RoomEvent.Timeline]], () =>
      room
        .getLiveTimeline()
        .getEvents()
        .some((e) => e.getContent().body === 'while Alice watches'),
    );
    await http(bobUser, 'PUT', `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/2`, {
      msgtype: 'm.text',
      body: 'while Alice watches',
    });
    await waiting;

    // Alice sends; Bob reads it through /sync.
    const sent = await alice.sendTextMessage(roomId, 'from the js-sdk');
    const events = await eventually(
      async () => {
        const sync = await http(bobUser, 'GET', '/sync');
        const rooms = sync.rooms as {
          join: Record<string, { timeline: { events: { event_id: string }[] } }>;
        };
        return rooms.join[roomId]?.timeline.events ?? [];
      },
      (list) => list.some((e) => e.event_id === sent.event_id),
    );
    assert.ok(events.some((e) => e.event_id === sent.event_id));
  });
});
