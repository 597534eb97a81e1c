/**
 * matrix-bot-sdk as a running bot on Commons: `MatrixClient` with a MemoryStorageProvider,
 * `AutojoinRoomsMixin`, `start()` with a filter (so it uploads one and syncs with its ID).
 * A user invites the bot over HTTP; the bot sees `room.invite` through /sync and joins by
 * itself (`room.join`); its member-list calls then answer as the server does; it hears a
 * message (`room.message`) and answers it; a kick reaches it as `room.leave`.
 * Every wait is on the bot's own events, with a deadline that fails naming what was awaited.
 */
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { after, before, it } from 'node:test';
import {
  AutojoinRoomsMixin,
  LogService,
  MatrixClient,
  MemoryStorageProvider,
  type ILogger,
  type MembershipEvent,
} from 'matrix-bot-sdk';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
/** How long any one condition may take to come true through /sync. */
const DEADLINE_MS = 10_000;
/** The filter the bot starts with: it is uploaded, then named by ID on every /sync. */
const BOT_FILTER = { room: { timeline: { limit: 20 } }, presence: { not_types: ['*'] } };

/** What the SDK logged at warn or error level: shown when a wait times out. */
const sdkComplaints: string[] = [];
const keep =
  (level: string) =>
  (module: string, ...messages: unknown[]) => {
    sdkComplaints.push(
      `${level} ${module}: ${messages.map((m) => (typeof m === 'string' ? m : JSON.stringify(m))).join(' ')}`,
    );
  };
const quiet: ILogger = {
  info: () => undefined,
  debug: () => undefined,
  trace: () => undefined,
  warn: keep('warn'),
  error: keep('error'),
};
LogService.setLogger(quiet);

type RawEvent = {
  type: string;
  sender: string;
  state_key?: string;
  event_id: string;
  content: Record<string, unknown>;
};

interface Heard {
  name: string;
  roomId: string;
  event: RawEvent;
  /** The bot's stored sync token when the event was emitted (the sync it came in). */
  token: string | null;
}

/**
 * Resolves with `check()`'s first truthy value, testing it now and after every emission of
 * the named events; rejects after `ms` naming `what`.
 */
function until<T>(
  what: string,
  emitter: EventEmitter,
  events: readonly string[],
  check: () => T | undefined | null | false,
  ms = DEADLINE_MS,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      for (const event of events) emitter.off(event, listener);
      settle();
    };
    const listener = () => {
      const value = check();
      if (value) finish(() => resolve(value));
    };
    const timer = setTimeout(() => {
      const complaints = sdkComplaints.length ? `; the SDK said: ${sdkComplaints.join(' | ')}` : '';
      finish(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}${complaints}`)));
    }, ms);
    for (const event of events) emitter.on(event, listener);
    listener();
  });
}

const sorted = <T>(record: Record<string, T>): Record<string, T> =>
  Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1)));

/** userId → membership from the SDK's MembershipEvents, each user once. */
function view(events: MembershipEvent[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const event of events) {
    assert.ok(!(event.membershipFor in out), `${event.membershipFor} twice`);
    out[event.membershipFor] = event.membership;
  }
  return sorted(out);
}

forEachDatabase('matrix-bot-sdk: a running bot (start, autojoin, room events)', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let carol: TestUser;
  let dave: TestUser;
  let botUser: TestUser;
  let bot: MatrixClient;
  let storage: MemoryStorageProvider;
  let roomId: string;
  let tokenAtJoin: string;
  const heard: Heard[] = [];

  const r = (id: string) => encodeURIComponent(id);
  const http = async (user: TestUser, method: string, path: string, body?: unknown) => {
    const res = await server.request<Record<string, unknown>>(method, `${C}${path}`, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, `${method} ${path}: ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const heardOf = (name: string, room: string, test: (e: RawEvent) => boolean = () => true) =>
    heard.find((h) => h.name === name && h.roomId === room && test(h.event));

  before(async () => {
    server = await startTestServer(dialect);
    [alice, carol, dave, botUser] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
    storage = new MemoryStorageProvider();
    bot = new MatrixClient(server.url, botUser.accessToken, storage);
    AutojoinRoomsMixin.setupOnClient(bot);
    for (const name of ['room.invite', 'room.join', 'room.leave', 'room.message']) {
      bot.on(name, (room: string, event: RawEvent) => {
        heard.push({ name, roomId: room, event, token: storage.getSyncToken() });
      });
    }
  });

  after(async () => {
    bot?.stop();
    await server?.close();
  });

  it('start() uploads its filter (the server keeps it as sent)', async () => {
    await bot.start(BOT_FILTER);
    const stored = storage.getFilter();
    assert.ok(stored, 'the SDK stored the uploaded filter');
    assert.deepEqual(stored.filter, BOT_FILTER);
    // A string, as the spec has it: the SDK sends the filter only `if (this.filterId)`
    // (MatrixClient.js doSync), so a numeric 0 would silently sync unfiltered.
    const id = stored.id as unknown;
    assert.equal(typeof id, 'string');
    assert.match(id as string, /^\d+$/);
    const fetched = await http(botUser, 'GET', `/user/${r(botUser.userId)}/filter/${id as string}`);
    assert.deepEqual(fetched, BOT_FILTER, 'the server kept the filter the SDK uploaded');
  });

  it('a user invites the bot over HTTP; it hears room.invite and joins by itself (room.join)', async () => {
    roomId = (await http(alice, 'POST', '/createRoom', { preset: 'private_chat', name: 'Bots' }))
      .room_id as string;
    await http(alice, 'POST', `/rooms/${r(roomId)}/invite`, { user_id: botUser.userId });
    const join = await until('the bot to join the room it was invited to', bot, ['room.join'], () =>
      heardOf('room.join', roomId),
    );
    const invite = heardOf('room.invite', roomId);
    assert.ok(invite, 'room.invite was heard');
    assert.ok(heard.indexOf(invite) < heard.indexOf(join), 'before room.join');
    assert.equal(invite.event.sender, alice.userId);
    assert.equal(invite.event.state_key, botUser.userId);
    assert.equal(invite.event.content.membership, 'invite');
    assert.equal(join.event.type, 'm.room.member');
    assert.equal(join.event.state_key, botUser.userId);
    assert.equal(join.event.content.membership, 'join');
    assert.match(join.token ?? '', /^s\d+$/);
    tokenAtJoin = join.token as string;
    // The server agrees.
    const state = await http(
      alice,
      'GET',
      `/rooms/${r(roomId)}/state/m.room.member/${r(botUser.userId)}`,
    );
    assert.equal(state.membership, 'join');
    assert.ok((await bot.getJoinedRooms()).includes(roomId));
  });

  it('getJoinedRooms, getJoinedRoomMembers and getRoomMembers with membership filters', async () => {
    // carol invited, dave joined then left, after the bot joined.
    await http(alice, 'POST', `/rooms/${r(roomId)}/invite`, { user_id: carol.userId });
    await http(alice, 'POST', `/rooms/${r(roomId)}/invite`, { user_id: dave.userId });
    await http(dave, 'POST', `/join/${r(roomId)}`, {});
    await http(dave, 'POST', `/rooms/${r(roomId)}/leave`, {});
    const other = (await http(alice, 'POST', '/createRoom', { preset: 'public_chat' }))
      .room_id as string;

    assert.deepEqual(await bot.getJoinedRooms(), [roomId], 'not the room it was never in');
    assert.deepEqual(
      [...(await bot.getJoinedRoomMembers(roomId))].sort(),
      [alice.userId, botUser.userId].sort(),
    );
    const everyone = sorted({
      [alice.userId]: 'join',
      [botUser.userId]: 'join',
      [carol.userId]: 'invite',
      [dave.userId]: 'leave',
    });
    assert.deepEqual(view(await bot.getRoomMembers(roomId)), everyone);
    assert.deepEqual(
      view(await bot.getRoomMembers(roomId, undefined, ['join'])),
      sorted({ [alice.userId]: 'join', [botUser.userId]: 'join' }),
    );
    assert.deepEqual(
      view(await bot.getRoomMembers(roomId, undefined, ['invite', 'leave'])),
      sorted({ [carol.userId]: 'invite', [dave.userId]: 'leave' }),
    );
    assert.deepEqual(
      view(await bot.getRoomMembers(roomId, undefined, undefined, ['leave'])),
      sorted({ [alice.userId]: 'join', [botUser.userId]: 'join', [carol.userId]: 'invite' }),
    );
    // The sync token the join came in is a valid `at`: the members as the bot joined.
    assert.deepEqual(
      view(await bot.getRoomMembers(roomId, tokenAtJoin)),
      sorted({ [alice.userId]: 'join', [botUser.userId]: 'join' }),
    );
    assert.deepEqual(
      view(await bot.getRoomMembers(roomId, tokenAtJoin, ['invite'])),
      {},
      'carol was invited after the join',
    );
    // The same answers as the server's own /members.
    const http2 = await http(alice, 'GET', `/rooms/${r(roomId)}/members?not_membership=leave`);
    const chunk = http2.chunk as RawEvent[];
    assert.deepEqual(
      sorted(Object.fromEntries(chunk.map((e) => [e.state_key, e.content.membership]))),
      view(await bot.getRoomMembers(roomId, undefined, undefined, ['leave'])),
    );
    // A room the bot is not in is refused.
    await assert.rejects(bot.getRoomMembers(other), (err: unknown) => {
      assert.equal((err as { statusCode?: number }).statusCode, 403);
      return true;
    });
  });

  it('hears a message (room.message) and answers it; the answer comes back to it and to the room', async () => {
    bot.on('room.message', (room: string, event: RawEvent) => {
      if (room !== roomId || event.sender === botUser.userId) return;
      if (event.content.body === 'ping') void bot.replyText(room, event, 'pong');
    });
    const sent = await http(alice, 'PUT', `/rooms/${r(roomId)}/send/m.room.message/ping1`, {
      msgtype: 'm.text',
      body: 'ping',
    });
    const ping = await until("the bot to hear alice's ping", bot, ['room.message'], () =>
      heardOf('room.message', roomId, (e) => e.content.body === 'ping'),
    );
    assert.equal(ping.event.event_id, sent.event_id);
    assert.equal(ping.event.sender, alice.userId);
    const pong = await until(
      'the bot to hear its own answer through /sync',
      bot,
      ['room.message'],
      () => heardOf('room.message', roomId, (e) => e.sender === botUser.userId),
    );
    assert.match(String(pong.event.content.body), /\npong$/, 'the answer, after the quoted ping');
    const relates = pong.event.content['m.relates_to'] as {
      'm.in_reply_to'?: { event_id?: string };
    };
    assert.equal(relates?.['m.in_reply_to']?.event_id, sent.event_id, 'a reply to the ping');
    const messages = await http(alice, 'GET', `/rooms/${r(roomId)}/messages?dir=b&limit=1`);
    const [last] = messages.chunk as RawEvent[];
    assert.equal(last?.event_id, pong.event.event_id, 'alice sees the answer last in the room');
  });

  it('a kick reaches the bot as room.leave', async () => {
    await http(alice, 'POST', `/rooms/${r(roomId)}/kick`, {
      user_id: botUser.userId,
      reason: 'bye',
    });
    const leave = await until('the bot to hear it was kicked', bot, ['room.leave'], () =>
      heardOf('room.leave', roomId),
    );
    assert.equal(leave.event.type, 'm.room.member');
    assert.equal(leave.event.state_key, botUser.userId);
    assert.equal(leave.event.sender, alice.userId);
    assert.equal(leave.event.content.membership, 'leave');
    assert.deepEqual(await bot.getJoinedRooms(), []);
    // The sync loop never failed ("Error handling sync", MatrixClient.js startSync); the only
    // refused requests were the bot's m.direct lookup at start (404, which DMs.js expects)
    // and the members of a room it is not in, asked for above (403).
    assert.deepEqual(
      sdkComplaints.filter((c) => !c.startsWith('error MatrixHttpClient')),
      [],
    );
    const refusals = sdkComplaints.map((c) => /"errcode":"(\w+)"/.exec(c)?.[1]);
    assert.deepEqual(
      [...new Set(refusals)].sort(),
      ['M_FORBIDDEN', 'M_NOT_FOUND'],
      sdkComplaints.join('\n'),
    );
  });
});
