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
 * data, so a rerun starts from the built data in seconds.
 */
import { C, inParallel, r, type Account, type PeerClient } from './client.js';

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

const PARALLEL = 16;

async function register(peer: PeerClient, name: string, displayname: string): Promise<Account> {
  const body = await peer.post<{ user_id: string; access_token: string }>(
    `register ${name}`,
    `${C}/register`,
    { username: name, password: 'bench-password', auth: { type: 'm.login.dummy' } },
  );
  const account = { userId: body.user_id, token: body.access_token };
  await peer.put(
    `displayname of ${name}`,
    `${C}/profile/${r(account.userId)}/displayname`,
    { displayname },
    account.token,
  );
  return account;
}

async function createRoom(peer: PeerClient, account: Account): Promise<string> {
  const body = await peer.post<{ room_id: string }>(
    'createRoom',
    `${C}/createRoom`,
    { preset: 'public_chat', room_version: '10' },
    account.token,
  );
  return body.room_id;
}

const join = (peer: PeerClient, account: Account, roomId: string) =>
  peer.post('join', `${C}/rooms/${r(roomId)}/join`, {}, account.token);

const leave = (peer: PeerClient, account: Account, roomId: string) =>
  peer.post('leave', `${C}/rooms/${r(roomId)}/leave`, {}, account.token);

/** Builds the dataset on one server, reporting progress through `log`. */
export async function buildDataset(
  peer: PeerClient,
  shape: DatasetShape,
  log: (message: string) => void,
): Promise<Manifest> {
  const started = Date.now();
  const step = (what: string) =>
    log(`${peer.name}: ${what} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  const owner = await register(peer, 'owner', 'The Owner');
  const pairA = await register(peer, 'pair_a', 'Pair A');
  const pairB = await register(peer, 'pair_b', 'Pair B');
  const bot = await register(peer, 'bridge_bot', 'Bridge Bot');
  const writers: Account[] = [];
  for (let i = 0; i < WRITERS; i++)
    writers.push(await register(peer, `writer_${i}`, `Writer ${i}`));

  const bigRoom = await createRoom(peer, owner);
  const joiners = shape.members - 1 + shape.left;
  const half = Math.floor(joiners / 2);
  const members: Account[] = new Array<Account>(joiners);
  const joinRange = (from: number, to: number) =>
    inParallel(to - from, PARALLEL, async (k) => {
      const i = from + k;
      const member = await register(peer, `member_${i}`, `Member ${i}`);
      members[i] = member;
      await join(peer, member, bigRoom);
      if (i % 1000 === 999) step(`${i + 1} of ${joiners} joined the big room`);
    });
  await joinRange(0, half);
  const messages = await peer.get<{ start: string }>(
    '/messages for an at token',
    `${C}/rooms/${r(bigRoom)}/messages?dir=b&limit=1`,
    owner.token,
  );
  await joinRange(half, joiners);
  await inParallel(shape.left, PARALLEL, (k) =>
    leave(peer, members[joiners - 1 - k] as Account, bigRoom).then(() => undefined),
  );
  step('big room built');

  const sharedRooms: string[] = [];
  await inParallel(shape.shared, PARALLEL, async (i) => {
    const roomId = await createRoom(peer, pairA);
    await join(peer, pairB, roomId);
    sharedRooms[i] = roomId;
  });
  await inParallel(shape.own * 2, PARALLEL, async (i) => {
    await createRoom(peer, i % 2 === 0 ? pairA : pairB);
  });
  step('pair built');

  const botRoomIds: string[] = [];
  await inParallel(shape.botRooms, PARALLEL, async (i) => {
    const roomId = await createRoom(peer, bot);
    for (let m = 0; m < shape.botRoomSize - 1; m++) await join(peer, members[m] as Account, roomId);
    botRoomIds[i] = roomId;
    if (i % 100 === 99) step(`${i + 1} of ${shape.botRooms} bot rooms`);
  });
  step('bot rooms built');

  const writerRooms: string[] = [];
  for (const writer of writers) writerRooms.push(await createRoom(peer, writer));
  const joinRoom = await createRoom(peer, owner);
  step('built');
  return {
    shape,
    owner,
    pairA,
    pairB,
    bot,
    writers,
    bigRoom,
    atToken: messages.start,
    joinedAtToken: 1 + half,
    botRoomIds,
    writerRooms,
    joinRoom,
    pairRoom: sharedRooms[0] as string,
    builtSeconds: Math.round((Date.now() - started) / 1000),
  };
}
