/**
 * The peer dataset of issue #20, built the same way on each server through its client API:
 *
 * - a big room of `members` joined members (the owner and `members - 1` others, each with a
 *   display name) and `left` more who joined and then left; an `at` token taken from
 *   `/messages` when half the joiners are in;
 * - a pair sharing `shared` rooms, each of them in `own` rooms more (pair A is the "user in
 *   2,000 rooms" of the issue, with the defaults);
 * - a bot in `botRooms` rooms of `botRoomSize` members (its members are the big room's first
 *   joiners);
 * - eight writers, each with a room of its own, for the writes scenario.
 *
 * What the measurements need (tokens, room IDs) is kept in a manifest beside each server's
 * data, so a rerun starts from the built data in seconds. Each step is recorded in a journal
 * (journal.ts) as it succeeds, so a build that stopped part-way carries on from there.
 *
 * At most `parallel` requests are in flight at once, spread over the big room (whose joins each
 * server takes one at a time), the bot's rooms (one worker per room, so many rooms fill at once)
 * and the pair's rooms; a request that fails with a 5xx, a 429 or a dropped connection is tried
 * again after a pause.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { HttpResult } from '../http.js';
import { jsonOf } from '../http.js';
import { C, inParallel, r, type Account, type PeerClient } from './client.js';
import type { Journal } from './journal.js';

export interface DatasetShape {
  members: number;
  left: number;
  shared: number;
  own: number;
  botRooms: number;
  botRoomSize: number;
}

export const ISSUE_SHAPE: DatasetShape = {
  members: 10_000,
  left: 1_000,
  shared: 1_000,
  own: 1_000,
  botRooms: 2_000,
  botRoomSize: 50,
};

/** The issue's shape, exactly. */
export function isIssueShape(shape: Readonly<Record<string, number | undefined>>): boolean {
  return Object.entries(ISSUE_SHAPE).every(([key, value]) => shape[key] === value);
}

export const WRITERS = 8;

export interface Manifest {
  shape: DatasetShape;
  owner: Account;
  pairA: Account;
  pairB: Account;
  bot: Account;
  writers: Account[];
  bigRoom: string;
  /** A token of the big room's history from when half its joiners were in. */
  atToken: string;
  /** How many were joined at `atToken` (the owner included). */
  joinedAtToken: number;
  botRoomIds: string[];
  writerRooms: string[];
  /** A public room of the owner's, for the join scenario (writers join and leave it). */
  joinRoom: string;
  /** A room pair A and pair B share, where pair B's messages wake pair A's incremental /sync. */
  pairRoom: string;
  builtSeconds: number;
}

/**
 * Requests in flight at once on each server while building, unless told otherwise. On a busy
 * machine 8, 16, 32 and 64 built at the same rate within the noise (docs/benchmarks.md): both
 * servers are short of CPU, not of requests; 32 was a little the fastest for Synapse once its
 * commits stopped waiting for the disk.
 */
export const BUILD_PARALLEL = 32;

const PASSWORD = 'bench-password';

/**
 * A counting semaphore: at most `permits` holders at once, served in arrival order, those who
 * ask `first` before the others.
 */
function semaphore(permits: number) {
  const waiting: (() => void)[] = [];
  const waitingFirst: (() => void)[] = [];
  let free = permits;
  return {
    async acquire(first: boolean): Promise<void> {
      if (free > 0) {
        free--;
        return;
      }
      await new Promise<void>((resolve) => (first ? waitingFirst : waiting).push(resolve));
    },
    release(): void {
      const next = waitingFirst.shift() ?? waiting.shift();
      if (next) next();
      else free++;
    },
  };
}

/**
 * Set while building the big room: its requests go first. The server takes its joins one at a
 * time, so it is the build's longest chain; served in turn with the bot's and the pair's many
 * workers it got 0.3 joins a second on Synapse while they got 6 steps.
 */
const bigRoomFirst = new AsyncLocalStorage<boolean>();

const errcodeOf = (result: HttpResult) => jsonOf<{ errcode?: string }>(result)?.errcode;

/** How many of each step the whole shape takes (progress and the estimate of what is left). */
export function stepsOf(shape: DatasetShape) {
  const joiners = shape.members - 1 + shape.left;
  return {
    accounts: 4 + WRITERS + joiners,
    rooms: 1 + shape.shared + 2 * shape.own + shape.botRooms + WRITERS + 1,
    joins: joiners + shape.shared + shape.botRooms * Math.max(0, shape.botRoomSize - 1),
    leaves: shape.left,
  };
}

/** Who creates the room a journal key names. */
function creatorOf(key: string): string {
  const [kind, n] = key.split(':');
  if (kind === 'shared') return 'pair_a';
  if (kind === 'own') return Number(n) % 2 === 0 ? 'pair_a' : 'pair_b';
  if (kind === 'bot') return 'bridge_bot';
  if (kind === 'writer') return `writer_${n}`;
  return 'owner';
}

/**
 * Builds the dataset on one server (or carries on with a build its journal has begun),
 * reporting progress through `log`.
 */
export async function buildDataset(
  peer: PeerClient,
  shape: DatasetShape,
  log: (message: string) => void,
  options: { journal: Journal; parallel?: number },
): Promise<Manifest> {
  const { journal } = options;
  const done = journal.state;
  const parallel = Math.max(1, options.parallel ?? BUILD_PARALLEL);
  if (done.shape && JSON.stringify(done.shape) !== JSON.stringify(shape))
    throw new Error(`${journal.file} is the journal of another shape`);
  if (!done.shape) journal.write({ t: 'shape', shape });
  const resumed = done.records > 1;
  const sessionStart = Date.now();
  const secondsBefore = done.seconds;
  const seconds = () => Math.round(secondsBefore + (Date.now() - sessionStart) / 1000);
  const step = (what: string) => log(`${peer.name}: ${what} (${seconds()} s)`);

  const total = stepsOf(shape);
  const units = (accounts: number, rooms: number, joins: number, leaves: number) =>
    2 * accounts + rooms + joins + leaves;
  const totalUnits = units(total.accounts, total.rooms, total.joins, total.leaves);
  const doneUnits = () =>
    units(done.accounts.size, done.rooms.size, done.joined.size, done.left.size);
  let lastUnits = doneUnits();
  let lastTime = Date.now();
  const report = () => {
    const now = Date.now();
    const rate = ((doneUnits() - lastUnits) * 1000) / Math.max(1, now - lastTime);
    const left = totalUnits - doneUnits();
    const eta = rate > 0 ? new Date(now + (left / rate) * 1000).toISOString().slice(0, 16) : '?';
    step(
      `${done.accounts.size}/${total.accounts} accounts, ${done.rooms.size}/${total.rooms} rooms, ` +
        `${done.joined.size}/${total.joins} joins, ${done.left.size}/${total.leaves} leaves; ` +
        `${rate.toFixed(1)} steps/s, ${left} steps left, done about ${eta} UTC`,
    );
    lastUnits = doneUnits();
    lastTime = now;
  };
  const timer = setInterval(report, 60_000);
  timer.unref();
  // The build's time so far, kept across sessions (to within ten seconds of a sudden stop).
  const clock = setInterval(() => journal.write({ t: 'seconds', seconds: seconds() }), 10_000);
  clock.unref();

  const gate = semaphore(parallel);
  /** One request, inside the limit, tried again when the server is busy or gone a moment. */
  const send = async (
    method: 'get' | 'post' | 'put',
    what: string,
    path: string,
    body?: unknown,
    token?: string,
  ): Promise<HttpResult> => {
    for (let attempt = 1; ; attempt++) {
      await gate.acquire(bigRoomFirst.getStore() === true);
      let result: HttpResult | undefined;
      let failure: unknown;
      try {
        result =
          method === 'get'
            ? await peer.http.get(path, token)
            : await peer.http[method](path, body, token);
      } catch (err) {
        failure = err;
      } finally {
        gate.release();
      }
      const again = result === undefined || result.status >= 500 || result.status === 429;
      if (!again && result) return result;
      if (attempt >= 6) {
        if (result) return result;
        throw failure instanceof Error ? failure : new Error(`${peer.name} ${what} failed`);
      }
      await delay(1000 * attempt);
    }
  };
  const ok = async <T>(
    method: 'get' | 'post' | 'put',
    what: string,
    path: string,
    body?: unknown,
    token?: string,
  ): Promise<T> => {
    const result = await send(method, what, path, body, token);
    if (result.status !== 200)
      throw new Error(
        `${peer.name} ${what}: ${result.status} ${result.body.toString().slice(0, 300)}`,
      );
    return jsonOf<T>(result) as T;
  };

  const registering = new Map<string, Promise<Account>>();
  /** The account `name` (registered and named now unless the journal has it). */
  const account = (name: string, displayname: string): Promise<Account> => {
    const known = done.accounts.get(name);
    if (known) return Promise.resolve(known);
    let pending = registering.get(name);
    if (!pending) {
      pending = (async () => {
        const registered = await send('post', `register ${name}`, `${C}/register`, {
          username: name,
          password: PASSWORD,
          auth: { type: 'm.login.dummy' },
        });
        let body: { user_id: string; access_token: string };
        if (registered.status === 400 && errcodeOf(registered) === 'M_USER_IN_USE') {
          // Registered before the build stopped, without the journal hearing of it.
          body = await ok('post', `login ${name}`, `${C}/login`, {
            type: 'm.login.password',
            identifier: { type: 'm.id.user', user: name },
            password: PASSWORD,
          });
        } else if (registered.status === 200) {
          body = jsonOf(registered) as typeof body;
        } else {
          throw new Error(
            `${peer.name} register ${name}: ${registered.status} ${registered.body.toString().slice(0, 300)}`,
          );
        }
        const made = { userId: body.user_id, token: body.access_token };
        await ok(
          'put',
          `displayname of ${name}`,
          `${C}/profile/${r(made.userId)}/displayname`,
          { displayname },
          made.token,
        );
        journal.write({ t: 'account', name, ...made });
        return made;
      })();
      registering.set(name, pending);
    }
    return pending;
  };

  /** The room `key` names (created now by `creator` unless the journal has it). */
  const room = async (key: string, creator: Account): Promise<string> => {
    const known = done.rooms.get(key);
    if (known) return known;
    journal.write({ t: 'creating', key });
    const body = await ok<{ room_id: string }>(
      'post',
      'createRoom',
      `${C}/createRoom`,
      { preset: 'public_chat', room_version: '10' },
      creator.token,
    );
    journal.write({ t: 'room', key, roomId: body.room_id });
    return body.room_id;
  };

  const joinOnce = async (key: string, name: string, member: Account, roomId: string) => {
    if (done.joined.has(`${key} ${name}`)) return;
    await ok('post', 'join', `${C}/rooms/${r(roomId)}/join`, {}, member.token);
    journal.write({ t: 'joined', key, member: name });
  };

  const leaveOnce = async (key: string, name: string, member: Account, roomId: string) => {
    if (done.left.has(`${key} ${name}`)) return;
    const result = await send('post', 'leave', `${C}/rooms/${r(roomId)}/leave`, {}, member.token);
    // 403: left already, in a session that stopped before the journal heard of it.
    if (result.status !== 200 && result.status !== 403)
      throw new Error(`${peer.name} leave: ${result.status} ${result.body.toString()}`);
    journal.write({ t: 'left', key, member: name });
  };

  if (resumed) step(`resuming: ${done.records} journal records`);
  const owner = await account('owner', 'The Owner');
  const pairA = await account('pair_a', 'Pair A');
  const pairB = await account('pair_b', 'Pair B');
  const bot = await account('bridge_bot', 'Bridge Bot');
  const writers: Account[] = [];
  for (let i = 0; i < WRITERS; i++) writers.push(await account(`writer_${i}`, `Writer ${i}`));
  const creators = new Map<string, Account>([
    ['owner', owner],
    ['pair_a', pairA],
    ['pair_b', pairB],
    ['bridge_bot', bot],
    ...writers.map((w, i) => [`writer_${i}`, w] as const),
  ]);

  // Rooms the server made when the build stopped, before their IDs reached the journal: their
  // creators leave them, so that no count is off by them.
  if (done.pendingCreates.size > 0) {
    const known = new Set(done.rooms.values());
    const names = new Set([...done.pendingCreates].map(creatorOf));
    for (const name of names) {
      const creator = creators.get(name) as Account;
      const { joined_rooms } = await ok<{ joined_rooms: string[] }>(
        'get',
        'joined_rooms',
        `${C}/joined_rooms`,
        undefined,
        creator.token,
      );
      for (const roomId of joined_rooms.filter((id) => !known.has(id))) {
        await ok('post', 'leave', `${C}/rooms/${r(roomId)}/leave`, {}, creator.token);
        step(`left ${roomId}, made by ${name} when the build stopped`);
      }
    }
    done.pendingCreates.clear();
  }

  const bigRoom = await room('big', owner);
  const joiners = shape.members - 1 + shape.left;
  const half = Math.floor(joiners / 2);
  const memberName = (i: number) => `member_${i}`;
  const member = (i: number) => account(memberName(i), `Member ${i}`);
  const bigWorkers = Math.max(2, Math.ceil(parallel / 4));
  const joinRange = (from: number, to: number) =>
    inParallel(to - from, bigWorkers, async (k) => {
      const i = from + k;
      await joinOnce('big', memberName(i), await member(i), bigRoom);
    });

  const bigRoomBuilt = bigRoomFirst.run(true, async () => {
    await joinRange(0, half);
    if (done.atToken === null) {
      const messages = await ok<{ start: string }>(
        'get',
        '/messages for an at token',
        `${C}/rooms/${r(bigRoom)}/messages?dir=b&limit=1`,
        undefined,
        owner.token,
      );
      journal.write({ t: 'at', token: messages.start });
    }
    await joinRange(half, joiners);
    await inParallel(shape.left, bigWorkers, async (k) => {
      const i = joiners - 1 - k;
      await leaveOnce('big', memberName(i), await member(i), bigRoom);
    });
    step('big room built');
  });

  const sharedRooms: string[] = [];
  const pairBuilt = (async () => {
    await inParallel(shape.shared, parallel, async (i) => {
      const key = `shared:${i}`;
      const roomId = await room(key, pairA);
      await joinOnce(key, 'pair_b', pairB, roomId);
      sharedRooms[i] = roomId;
    });
    await inParallel(shape.own * 2, parallel, async (i) => {
      await room(`own:${i}`, i % 2 === 0 ? pairA : pairB);
    });
    step('pair built');
  })();

  const botRoomIds: string[] = [];
  const botBuilt = (async () => {
    // The bot's rooms are joined by the big room's first joiners.
    const botMembers = await Promise.all(
      Array.from({ length: Math.max(0, shape.botRoomSize - 1) }, (_, m) => member(m)),
    );
    await inParallel(shape.botRooms, parallel, async (i) => {
      const key = `bot:${i}`;
      const roomId = await room(key, bot);
      for (let m = 0; m < botMembers.length; m++)
        await joinOnce(key, memberName(m), botMembers[m] as Account, roomId);
      botRoomIds[i] = roomId;
    });
    step('bot rooms built');
  })();

  try {
    await Promise.all([bigRoomBuilt, pairBuilt, botBuilt]);
    const writerRooms: string[] = [];
    for (const [i, writer] of writers.entries())
      writerRooms.push(await room(`writer:${i}`, writer));
    const joinRoom = await room('join', owner);
    report();
    journal.write({ t: 'seconds', seconds: seconds() });
    step('built');
    return {
      shape,
      owner,
      pairA,
      pairB,
      bot,
      writers,
      bigRoom,
      atToken: done.atToken as string,
      joinedAtToken: 1 + half,
      botRoomIds,
      writerRooms,
      joinRoom,
      pairRoom: sharedRooms[0] as string,
      builtSeconds: seconds(),
    };
  } finally {
    clearInterval(timer);
    clearInterval(clock);
  }
}
