/**
 * matrix-js-sdk as a running client of Commons: two clients call `startClient({
 * lazyLoadMembers: true })` and live off /sync. A creates a room and invites B; B sees the
 * invite through sync and joins; A sees B join; messages flow both ways (each sender's local
 * echo matched by its transaction ID); typing, a read receipt and presence reach A;
 * `room.loadMembersIfNeeded()` fills B's lazily loaded member list; B scrolls back from the
 * sync's prev_batch to the room's creation; the SDK's `_unstable_getSharedRooms` agrees with
 * `/v1/mutual_rooms`.
 *
 * Along the way it checks, on the wire, what the SDK really sends: the legacy top-level
 * `user` field at login, `/pushrules/` with its trailing slash, an uploaded filter plus an
 * inline one on the first /sync, and `/members?not_membership=leave&at=<sync token>`; and
 * that the server refused nothing but one unstable probe.
 * Every wait is on the SDK's own events, with a deadline that fails naming what was awaited.
 */
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { after, before, it } from 'node:test';
import type { MatrixClient, MatrixEvent, Room } from 'matrix-js-sdk';
import type { Logger } from 'matrix-js-sdk/lib/logger.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { createSdkClient, loadMatrixJsSdk } from '../helpers/matrix-js-sdk.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
/** How long any one condition may take to come true through /sync. */
const DEADLINE_MS = 10_000;

interface Recorded {
  who: string;
  method: string;
  url: URL;
  body: string | undefined;
  /** The answer's status; undefined while the request is in flight (a long-poll). */
  status: number | undefined;
  /** The answer's JSON body, for filter uploads and refusals. */
  answer?: Record<string, unknown>;
}

/** A fetch that does the real request and notes what was asked and how it was answered. */
function recordingFetch(who: string, log: Recorded[]): typeof globalThis.fetch {
  return async (input, init) => {
    const request = new Request(input, init);
    const entry: Recorded = {
      who,
      method: request.method,
      url: new URL(request.url),
      body: typeof init?.body === 'string' ? init.body : undefined,
      status: undefined,
    };
    log.push(entry);
    const response = await fetch(input, init);
    entry.status = response.status;
    if (response.status >= 400 || entry.url.pathname.endsWith('/filter'))
      entry.answer = (await response
        .clone()
        .json()
        .catch(() => ({}))) as Record<string, unknown>;
    return response;
  };
}

const silentLogger: Logger = {
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  getChild: () => silentLogger,
};

/**
 * Resolves with `check()`'s first truthy value, testing it now and after every emission of
 * the given SDK events; rejects after `ms` naming `what` (and what went wrong on the wire).
 */
function until<T>(
  what: string,
  sources: ReadonlyArray<readonly [object, string]>,
  check: () => T | undefined | null | false,
  context: () => string = () => '',
  ms = DEADLINE_MS,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const emitters = sources.map(([emitter, event]) => [emitter as EventEmitter, event] as const);
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      for (const [emitter, event] of emitters) emitter.off(event, listener);
      settle();
    };
    const listener = () => {
      let value: T | undefined | null | false;
      try {
        value = check();
      } catch (err) {
        finish(() => reject(err as Error));
        return;
      }
      if (value) finish(() => resolve(value));
    };
    const timer = setTimeout(
      () =>
        finish(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}${context()}`))),
      ms,
    );
    for (const [emitter, event] of emitters) emitter.on(event, listener);
    listener();
  });
}

forEachDatabase('matrix-js-sdk: two clients living off /sync', (dialect) => {
  let server: TestServer;
  let aliceUser: TestUser;
  let bobUser: TestUser;
  let carolUser: TestUser;
  let daveUser: TestUser;
  let alice: MatrixClient;
  let bob: MatrixClient;
  let bobLogin: { user_id: string; access_token: string; device_id: string };
  let roomId: string;
  const log: Recorded[] = [];
  const states: Record<string, string[]> = { alice: [], bob: [] };

  /** Requests the server refused or failed, for the message of a timed-out wait. */
  const failures = () => {
    const bad = log.filter((r) => (r.status ?? 0) >= 400);
    if (bad.length === 0) return '';
    return `; failed requests: ${bad
      .map((r) => `${r.who} ${r.method} ${r.url.pathname}${r.url.search} → ${r.status}`)
      .join(', ')}`;
  };
  const context = () => `${failures()}; sync states: ${JSON.stringify(states)}`;

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
    [aliceUser, bobUser, carolUser, daveUser] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
    alice = await createSdkClient(server, aliceUser, { fetchFn: recordingFetch('alice', log) });
  });

  after(async () => {
    alice?.stopClient();
    bob?.stopClient();
    await server?.close();
  });

  it('B logs in through the SDK, which sends the legacy top-level `user` field', async () => {
    const sdk = await loadMatrixJsSdk();
    const loginClient = sdk.createClient({
      baseUrl: server.url,
      logger: silentLogger,
      fetchFn: recordingFetch('bob-login', log),
    });
    const localpart = bobUser.userId.slice(1, bobUser.userId.indexOf(':'));
    const response = await loginClient.loginWithPassword(localpart, bobUser.password);
    bobLogin = {
      user_id: response.user_id,
      access_token: response.access_token,
      device_id: response.device_id,
    };
    assert.equal(bobLogin.user_id, bobUser.userId);
    assert.notEqual(bobLogin.device_id, bobUser.deviceId, 'a new device for the new login');
    const sent = log.find((r) => r.who === 'bob-login' && r.url.pathname.endsWith('/login'));
    assert.ok(sent?.body, 'the login request was seen');
    const body = JSON.parse(sent.body) as Record<string, unknown>;
    assert.equal(body.type, 'm.login.password');
    assert.equal(body.user, localpart);
    assert.equal(body.identifier, undefined, 'the SDK uses the legacy field, not identifier');
    bob = await createSdkClient(
      server,
      {
        userId: bobLogin.user_id,
        accessToken: bobLogin.access_token,
        deviceId: bobLogin.device_id,
        password: bobUser.password,
      },
      { fetchFn: recordingFetch('bob', log) },
    );
  });

  it('both clients start with lazyLoadMembers and reach PREPARED, then SYNCING', async () => {
    const { ClientEvent, SyncState } = await loadMatrixJsSdk();
    for (const [name, client] of [
      ['alice', alice],
      ['bob', bob],
    ] as const) {
      client.on(ClientEvent.Sync, (state) => {
        const list = states[name] as string[];
        if (list.at(-1) !== state) list.push(state);
      });
    }
    await Promise.all([
      alice.startClient({ lazyLoadMembers: true }),
      bob.startClient({ lazyLoadMembers: true }),
    ]);
    for (const [name, client] of [
      ['alice', alice],
      ['bob', bob],
    ] as const) {
      await until(
        `${name} to reach SYNCING`,
        [[client, ClientEvent.Sync]],
        () => client.getSyncState() === SyncState.Syncing,
        context,
      );
      const seen = states[name] as string[];
      assert.deepEqual(
        seen.slice(0, 2),
        [SyncState.Prepared, SyncState.Syncing],
        `${name}: ${seen}`,
      );
      assert.ok(!seen.includes(SyncState.Error), `${name} never saw ERROR: ${seen}`);
    }

    for (const [who, client] of [
      ['alice', alice],
      ['bob', bob],
    ] as const) {
      const mine = log.filter((r) => r.who === who);
      // Push rules: GET /pushrules/ with the trailing slash, answered, and the SDK kept them.
      const rules = mine.find((r) => r.url.pathname.endsWith('/pushrules/'));
      assert.ok(rules, `${who} asked for /pushrules/`);
      assert.equal(rules.status, 200, `${who} /pushrules/`);
      assert.ok(
        client.pushRules?.global.override?.some((rule) => rule.rule_id === '.m.rule.master'),
        `${who}'s SDK holds the server-default rules`,
      );
      // The filter: uploaded once, then named by ID; the first /sync carries it inline.
      const upload = mine.find(
        (r) => r.method === 'POST' && /\/user\/[^/]+\/filter$/.test(r.url.pathname),
      );
      assert.ok(upload, `${who} uploaded a filter`);
      assert.equal(upload.status, 200);
      const uploaded = JSON.parse(upload.body ?? '{}') as {
        room?: { state?: { lazy_load_members?: boolean } };
      };
      assert.equal(uploaded.room?.state?.lazy_load_members, true, upload.body);
      const first = mine.find((r) => r.url.pathname.endsWith('/sync'));
      assert.ok(first, `${who} sent a /sync`);
      assert.equal(first.status, 200);
      assert.equal(first.url.searchParams.get('since'), null, 'the first /sync is initial');
      const inline = JSON.parse(first.url.searchParams.get('filter') ?? 'null') as {
        room?: { state?: { lazy_load_members?: boolean }; timeline?: { limit?: number } };
      } | null;
      assert.equal(inline?.room?.state?.lazy_load_members, true, 'the inline filter lazy-loads');
      assert.equal(inline?.room?.timeline?.limit, 8, "the SDK's initialSyncLimit");
    }
  });

  it('A creates a room and invites B; B sees the invite through /sync', async () => {
    const { ClientEvent, Preset, RoomEvent } = await loadMatrixJsSdk();
    const created = await alice.createRoom({
      name: 'Sync with the SDK',
      preset: Preset.PrivateChat,
    });
    roomId = created.room_id;
    await until(
      'alice to see her new room through /sync',
      [
        [alice, ClientEvent.Room],
        [alice, RoomEvent.MyMembership],
      ],
      () => alice.getRoom(roomId)?.getMyMembership() === 'join',
      context,
    );
    await alice.invite(roomId, bob.getSafeUserId());
    const invited = await until(
      'bob to see the invite through /sync',
      [
        [bob, ClientEvent.Room],
        [bob, RoomEvent.MyMembership],
      ],
      () => {
        const room = bob.getRoom(roomId);
        return room?.getMyMembership() === 'invite' ? room : undefined;
      },
      context,
    );
    assert.equal(invited.name, 'Sync with the SDK', 'the stripped state names the room');
    const me = invited.getMember(bob.getSafeUserId());
    assert.equal(me?.membership, 'invite');
    assert.equal(me?.events.member?.getSender(), alice.getSafeUserId(), 'alice invited bob');
  });

  it('before B joins, carol joins quietly and dave joins then leaves (for lazy loading later)', async () => {
    await http(aliceUser, 'POST', `/rooms/${encodeURIComponent(roomId)}/invite`, {
      user_id: carolUser.userId,
    });
    await http(carolUser, 'POST', `/join/${encodeURIComponent(roomId)}`, {});
    await http(aliceUser, 'POST', `/rooms/${encodeURIComponent(roomId)}/invite`, {
      user_id: daveUser.userId,
    });
    await http(daveUser, 'POST', `/join/${encodeURIComponent(roomId)}`, {});
    await http(daveUser, 'POST', `/rooms/${encodeURIComponent(roomId)}/leave`, {});
    // Enough chatter from alice that none of those member events is in B's first timeline
    // (each send has been committed when the SDK's request returns).
    for (let i = 0; i < 12; i++) await alice.sendTextMessage(roomId, `filler ${i}`);
  });

  it('B joins; A sees B join', async () => {
    const { RoomEvent, RoomMemberEvent } = await loadMatrixJsSdk();
    const aliceSeesJoin = until(
      "alice to see bob's join",
      [[alice, RoomMemberEvent.Membership]],
      () => alice.getRoom(roomId)?.getMember(bob.getSafeUserId())?.membership === 'join',
      context,
    );
    await bob.joinRoom(roomId);
    await until(
      'bob to see himself joined through /sync',
      [[bob, RoomEvent.MyMembership]],
      () => bob.getRoom(roomId)?.getMyMembership() === 'join',
      context,
    );
    await aliceSeesJoin;
    const joinEvent = alice.getRoom(roomId)?.getMember(bob.getSafeUserId())?.events.member;
    assert.equal(joinEvent?.getSender(), bob.getSafeUserId());
  });

  it("A knows B's current presence as soon as they share a room", async () => {
    const { UserEvent } = await loadMatrixJsSdk();
    const bobId = bob.getSafeUserId();
    // Bob is online (he is syncing) and alice saw him join: the same /sync carries it.
    await until(
      "alice to know bob's presence",
      [[alice, UserEvent.Presence]],
      () => alice.getUser(bobId)?.presence === 'online',
      context,
      2_000,
    );
  });

  it('messages flow both ways, and each sender sees its own message once (its transaction ID came back)', async () => {
    const { RoomEvent } = await loadMatrixJsSdk();
    const message = (client: MatrixClient, body: string) => (): MatrixEvent | undefined =>
      client
        .getRoom(roomId)
        ?.getLiveTimeline()
        .getEvents()
        .find((e) => e.getType() === 'm.room.message' && e.getContent().body === body);
    const remote = (client: MatrixClient, body: string) => () => {
      const event = message(client, body)();
      return event?.getId()?.startsWith('$') && event.status === null ? event : undefined;
    };

    const bobGets = until(
      "bob to receive alice's message",
      [[bob, RoomEvent.Timeline]],
      message(bob, 'hello bob'),
      context,
    );
    const sentByAlice = await alice.sendTextMessage(roomId, 'hello bob');
    const atBob = await bobGets;
    assert.equal(atBob.getId(), sentByAlice.event_id);
    assert.equal(atBob.getSender(), alice.getSafeUserId());

    const aliceGets = until(
      "alice to receive bob's reply",
      [[alice, RoomEvent.Timeline]],
      message(alice, 'hello alice'),
      context,
    );
    const sentByBob = await bob.sendTextMessage(roomId, 'hello alice');
    const atAlice = await aliceGets;
    assert.equal(atAlice.getId(), sentByBob.event_id);
    assert.equal(atAlice.getSender(), bob.getSafeUserId());

    // The sender's local echo is replaced by the event from /sync (matched on the
    // transaction ID), not shown twice.
    for (const [client, body, id] of [
      [alice, 'hello bob', sentByAlice.event_id],
      [bob, 'hello alice', sentByBob.event_id],
    ] as const) {
      const own = await until(
        `${client.getSafeUserId()} to see its own message confirmed by /sync`,
        [
          [client, RoomEvent.Timeline],
          [client, RoomEvent.LocalEchoUpdated],
        ],
        remote(client, body),
        context,
      );
      assert.equal(own.getId(), id);
      // The transaction ID the SDK sent the event with (the last segment of its PUT) is in
      // the event's unsigned data as /sync gave it back to the sending device.
      const put = log.find(
        (r) =>
          r.method === 'PUT' &&
          r.url.pathname.includes('/send/m.room.message/') &&
          r.body?.includes(body),
      );
      assert.ok(put, `the SDK's PUT of ${body}`);
      const txnId = decodeURIComponent(put.url.pathname.split('/').at(-1) ?? '');
      assert.equal(own.getUnsigned().transaction_id, txnId);
      const copies = (client.getRoom(roomId) as Room)
        .getLiveTimeline()
        .getEvents()
        .filter((e) => e.getContent().body === body);
      assert.equal(copies.length, 1, `${body} is in the sender's timeline once`);
    }
  });

  it("B's typing notifications and read receipt reach A through /sync (ephemeral events)", async () => {
    const { ReceiptType, RoomEvent, RoomMemberEvent } = await loadMatrixJsSdk();
    const aliceRoom = alice.getRoom(roomId) as Room;
    const bobId = bob.getSafeUserId();
    const typingIs = (value: boolean) => () => aliceRoom.getMember(bobId)?.typing === value;

    const typing = until(
      'alice to see bob typing',
      [[alice, RoomMemberEvent.Typing]],
      typingIs(true),
      context,
    );
    await bob.sendTyping(roomId, true, 30_000);
    await typing;
    const stopped = until(
      'alice to see bob stop typing',
      [[alice, RoomMemberEvent.Typing]],
      typingIs(false),
      context,
    );
    await bob.sendTyping(roomId, false, 0);
    await stopped;

    // Bob reads alice's message; alice sees the receipt the server sent, not one she made up.
    const read = (bob.getRoom(roomId) as Room)
      .getLiveTimeline()
      .getEvents()
      .find((e) => e.getContent().body === 'hello bob') as MatrixEvent;
    const receipt = until(
      "alice to see bob's read receipt",
      [[alice, RoomEvent.Receipt]],
      () => aliceRoom.getReadReceiptForUserId(bobId, true, ReceiptType.Read),
      context,
    );
    await bob.sendReadReceipt(read);
    const seen = await receipt;
    assert.equal(seen.eventId, read.getId());
    assert.equal(typeof seen.data.ts, 'number');
    const sent = log.find((r) => r.who === 'bob' && r.url.pathname.includes('/receipt/m.read/'));
    assert.equal(sent?.status, 200, 'POST /receipt/m.read/{eventId}');
  });

  it('B goes idle through the SDK (set_presence=unavailable on /sync, then PUT /presence); A sees both', async () => {
    const { RoomEvent, SetPresence, UserEvent } = await loadMatrixJsSdk();
    const bobId = bob.getSafeUserId();
    const presenceAtAlice = (presence: string, statusMsg: string | undefined) =>
      until(
        `alice to see bob ${presence} (${statusMsg ?? 'no status message'})`,
        // Presence fires when the state changes, LastPresenceTs on every m.presence event.
        [
          [alice, UserEvent.Presence],
          [alice, UserEvent.LastPresenceTs],
        ],
        () => {
          const user = alice.getUser(bobId);
          return user?.presence === presence && user.presenceStatusMsg === statusMsg
            ? user
            : undefined;
        },
        context,
      );

    // From now on bob's /sync requests say set_presence=unavailable. Two messages from
    // alice, each awaited by bob, make sure one such request has been answered: the second
    // comes in answer to a /sync bob sent after processing the first, so after the switch.
    // The PUT comes only then: Commons marks a user online on every /sync without
    // set_presence (even right after an explicit PUT of unavailable, which Synapse keeps), so
    // a request still in flight from before the switch could undo it.
    const idle = presenceAtAlice('unavailable', undefined);
    await bob.setSyncPresence(SetPresence.Unavailable);
    for (const body of ['are you there?', 'hello?']) {
      const delivered = until(
        `bob to receive "${body}"`,
        [[bob, RoomEvent.Timeline]],
        () =>
          bob
            .getRoom(roomId)
            ?.getLiveTimeline()
            .getEvents()
            .some((e) => e.getContent().body === body),
        context,
      );
      await alice.sendTextMessage(roomId, body);
      await delivered;
    }
    assert.ok(
      log.some(
        (r) =>
          r.who === 'bob' &&
          r.url.pathname.endsWith('/sync') &&
          r.url.searchParams.get('set_presence') === 'unavailable' &&
          r.status === 200,
      ),
      'a /sync with set_presence=unavailable was answered',
    );
    await idle;

    // The status message, set with PUT /presence/{userId}/status.
    const lunch = presenceAtAlice('unavailable', 'out to lunch');
    await bob.setPresence({ presence: 'unavailable', status_msg: 'out to lunch' });
    const user = await lunch;
    assert.equal(typeof user.lastPresenceTs, 'number');
    const put = log.find((r) => r.who === 'bob' && r.url.pathname.endsWith('/status'));
    assert.equal(put?.method, 'PUT');
    assert.equal(put.status, 200);
    const status = await http(aliceUser, 'GET', `/presence/${encodeURIComponent(bobId)}/status`);
    assert.equal(status.presence, 'unavailable');
    assert.equal(status.status_msg, 'out to lunch');
  });

  it("B's room.loadMembersIfNeeded() fills the lazily loaded member list from /members?not_membership=leave&at=", async () => {
    const room = bob.getRoom(roomId) as Room;
    const carol = carolUser.userId;
    const dave = daveUser.userId;
    assert.equal(room.membersLoaded(), false, 'lazy loading: members not loaded yet');
    assert.equal(room.getMember(carol), null, 'carol never spoke: not sent by /sync');
    assert.equal(room.getJoinedMemberCount(), 3, 'the summary counts alice, bob and carol');
    const position = (token: string | null | undefined) =>
      Number(/^s(\d+)$/.exec(token ?? '')?.[1]);
    const tokenBefore = position(bob.store.getSyncToken());
    await room.loadMembersIfNeeded();
    const tokenAfter = position(bob.store.getSyncToken());
    assert.equal(room.membersLoaded(), true);
    const joined = room
      .getMembersWithMembership('join')
      .map((m) => m.userId)
      .sort();
    assert.deepEqual(joined, [aliceUser.userId, bobUser.userId, carol].sort());
    assert.equal(room.getMember(dave), null, 'dave left: not_membership=leave keeps him out');

    const members = log.filter((r) => r.who === 'bob' && r.url.pathname.endsWith('/members'));
    assert.equal(members.length, 1, 'one /members request');
    const request = members[0] as Recorded;
    assert.equal(request.url.pathname, `${C}/rooms/${encodeURIComponent(roomId)}/members`);
    assert.equal(request.url.searchParams.get('not_membership'), 'leave');
    assert.equal(request.url.searchParams.get('membership'), null);
    // `at` is the SDK's latest sync token when it asked.
    const at = position(request.url.searchParams.get('at'));
    assert.ok(tokenBefore <= at && at <= tokenAfter, `${tokenBefore} ≤ ${at} ≤ ${tokenAfter}`);
    assert.equal(request.status, 200);
  });

  it("B scrolls back from its limited join timeline (the sync's prev_batch) to the room's creation", async () => {
    const room = bob.getRoom(roomId) as Room;
    assert.notEqual(room.oldState.paginationToken, null, 'the join timeline was limited');
    for (let page = 0; room.oldState.paginationToken !== null; page++) {
      assert.ok(page < 20, 'the start of the room within 20 pages');
      await bob.scrollback(room, 10);
    }
    const events = room.getLiveTimeline().getEvents();
    assert.equal(events[0]?.getType(), 'm.room.create', 'the timeline now starts at the creation');
    const bodies = events
      .filter((e) => e.getType() === 'm.room.message')
      .map((e) => e.getContent().body as string);
    const fillers = Array.from({ length: 12 }, (_, i) => `filler ${i}`);
    assert.deepEqual(
      bodies,
      [...fillers, 'hello bob', 'hello alice', 'are you there?', 'hello?'],
      'each message once, in order',
    );
    const ids = events.map((e) => e.getId());
    assert.equal(new Set(ids).size, ids.length, 'no event twice');
    const scrolls = log.filter((r) => r.who === 'bob' && r.url.pathname.endsWith('/messages'));
    assert.ok(scrolls.length > 0);
    for (const request of scrolls) {
      assert.equal(request.status, 200);
      assert.equal(request.url.searchParams.get('dir'), 'b');
    }
  });

  it('_unstable_getSharedRooms and a plain fetch of /v1/mutual_rooms agree', async () => {
    // A second shared room, and one bob is only invited to.
    const other = (await http(aliceUser, 'POST', '/createRoom', { preset: 'public_chat' }))
      .room_id as string;
    await http(bobUser, 'POST', `/join/${encodeURIComponent(other)}`, {});
    const invitedOnly = (await http(aliceUser, 'POST', '/createRoom', { preset: 'private_chat' }))
      .room_id as string;
    await http(aliceUser, 'POST', `/rooms/${encodeURIComponent(invitedOnly)}/invite`, {
      user_id: bobUser.userId,
    });
    const walk = async (token: string, userId: string) => {
      const rooms: string[] = [];
      let from: string | undefined;
      for (let page = 0; page < 100; page++) {
        const query = new URLSearchParams({ user_id: userId, ...(from ? { from } : {}) });
        const response = await fetch(`${server.url}/_matrix/client/v1/mutual_rooms?${query}`, {
          headers: { Authorization: `Bearer ${token}` },
        });
        const body = (await response.json()) as { joined: string[]; next_batch?: string };
        assert.equal(response.status, 200, JSON.stringify(body));
        rooms.push(...body.joined);
        if (body.next_batch === undefined) return rooms.sort();
        from = body.next_batch;
      }
      throw new Error('more than 100 pages');
    };
    const expected = [roomId, other].sort();
    assert.deepEqual(await walk(bobLogin.access_token, aliceUser.userId), expected);
    assert.deepEqual(
      [...(await bob._unstable_getSharedRooms(alice.getSafeUserId()))].sort(),
      expected,
    );
    assert.deepEqual(
      [...(await alice._unstable_getSharedRooms(bob.getSafeUserId()))].sort(),
      expected,
    );
    assert.deepEqual(await walk(aliceUser.accessToken, bobUser.userId), expected);
    // carol shares only the first room with bob; dave, who left, none.
    assert.deepEqual(await bob._unstable_getSharedRooms(carolUser.userId), [roomId]);
    assert.deepEqual(await walk(bobLogin.access_token, carolUser.userId), [roomId]);
    assert.deepEqual(await bob._unstable_getSharedRooms(daveUser.userId), []);
  });

  it('B rejects an invite and leaves the room; A sees B go; a fresh client finds both rooms with syncLeftRooms()', async () => {
    const { ClientEvent, RoomEvent, RoomMemberEvent } = await loadMatrixJsSdk();
    const bobId = bob.getSafeUserId();
    const rejected = (
      await http(aliceUser, 'POST', '/createRoom', { preset: 'private_chat', name: 'Reject me' })
    ).room_id as string;
    await http(aliceUser, 'POST', `/rooms/${encodeURIComponent(rejected)}/invite`, {
      user_id: bobId,
    });
    const membership = (room: string, value: string) => () =>
      bob.getRoom(room)?.getMyMembership() === value;
    const mine: Array<readonly [object, string]> = [
      [bob, ClientEvent.Room],
      [bob, RoomEvent.MyMembership],
    ];
    await until('bob to see the second invite', mine, membership(rejected, 'invite'), context);
    await bob.leave(rejected);
    await until(
      'bob to see his rejection through /sync',
      mine,
      membership(rejected, 'leave'),
      context,
    );

    const aliceSees = until(
      'alice to see bob leave',
      [[alice, RoomMemberEvent.Membership]],
      () => alice.getRoom(roomId)?.getMember(bobId)?.membership === 'leave',
      context,
    );
    await bob.leave(roomId);
    await until(
      'bob to see himself gone through /sync',
      mine,
      membership(roomId, 'leave'),
      context,
    );
    await aliceSees;

    // A client started afresh has neither room; include_leave brings both, named.
    const fresh = await createSdkClient(
      server,
      {
        userId: bobLogin.user_id,
        accessToken: bobLogin.access_token,
        deviceId: bobLogin.device_id,
        password: bobUser.password,
      },
      { fetchFn: recordingFetch('bob-fresh', log) },
    );
    const left = await fresh.syncLeftRooms();
    const found = Object.fromEntries(left.map((room) => [room.roomId, room]));
    assert.deepEqual(Object.keys(found).sort(), [roomId, rejected].sort());
    assert.equal(found[roomId]?.getMyMembership(), 'leave');
    assert.equal(found[roomId]?.name, 'Sync with the SDK');
    assert.equal(found[rejected]?.name, 'Reject me');
    const leftSync = log.find((r) => r.who === 'bob-fresh' && r.url.pathname.endsWith('/sync'));
    assert.equal(leftSync?.status, 200);
  });

  it('every later /sync named the uploaded filter by ID, with since tokens that never go back', async () => {
    for (const who of ['alice', 'bob']) {
      const mine = log.filter((r) => r.who === who);
      const upload = mine.find((r) => r.method === 'POST' && r.url.pathname.endsWith('/filter'));
      const filterId = upload?.answer?.filter_id;
      assert.equal(typeof filterId, 'string', JSON.stringify(upload?.answer));
      const syncs = mine.filter((r) => r.url.pathname.endsWith('/sync'));
      assert.ok(syncs.length >= 3, `${who} made ${syncs.length} /sync requests`);
      let previous = 0;
      for (const sync of syncs.slice(1)) {
        assert.equal(sync.url.searchParams.get('filter'), filterId);
        const since = /^s(\d+)$/.exec(sync.url.searchParams.get('since') ?? '');
        assert.ok(since, sync.url.search);
        assert.ok(Number(since[1]) >= previous, `${since[0]} after s${previous}`);
        previous = Number(since[1]);
        assert.ok(sync.status === undefined || sync.status === 200, `${sync.url} → ${sync.status}`);
      }
    }
  });

  it('the server refused nothing the SDK asked for but the unstable MSC4143 probe, which it reads as unsupported', () => {
    const refused = log.filter((r) => r.status !== undefined && r.status >= 400);
    for (const r of refused) {
      // node_modules/matrix-js-sdk/lib/rtcTransportsCachedValue.js: a 404 means "not supported".
      assert.equal(
        r.url.pathname,
        '/_matrix/client/unstable/org.matrix.msc4143/rtc/transports',
        `${r.who} ${r.method} ${r.url.pathname}${r.url.search} → ${r.status} ${JSON.stringify(r.answer)}`,
      );
      assert.equal(r.status, 404);
      assert.equal(r.answer?.errcode, 'M_UNRECOGNIZED');
    }
  });
});
