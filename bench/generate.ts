/**
 * The dataset generator: builds a network-shaped database through Commons' own services
 * (createRoom with its presets, join/leave/ban through the membership service, every event
 * authorised, hashed, signed and given a stream position), skipping only HTTP. Many
 * operations share one transaction: the services' own `tx` calls run inside the batch's.
 */
import pg from 'pg';
import { loadConfig } from '../src/config/load.js';
import { loadServerSecrets } from '../src/config/server-secrets.js';
import { serviceSettingsOf } from '../src/main.js';
import { createServices, type Requester, type Services } from '../src/services/index.js';
import { openStorage, type Storage, type Stores } from '../src/storage/index.js';
import type { DatasetProfile } from './profiles.js';
import { requiredPoolRooms } from './profiles.js';
import { seededRandom, zipfSize } from './random.js';

export const SERVER_NAME = 'bench.local';

export interface BenchUser {
  userId: string;
  accessToken: string;
}

export interface PairInfo {
  name: string;
  a: BenchUser;
  b: BenchUser;
  /** Rooms each user of the pair has joined. */
  roomsEach: number;
  /** Rooms both have joined. */
  shared: number;
  /** The shared rooms' IDs, sorted (kept for the sharing and light pairs only). */
  sharedRoomIds?: string[];
}

export interface Manifest {
  format: 1;
  profile: string;
  seed: number;
  dataset: DatasetProfile;
  serverName: string;
  builtAt: string;
  buildSeconds: number;
  /** Events written (the stream position at the end of the build). */
  events: number;
  users: number;
  rooms: number;
  owner: BenchUser;
  bigRoom: {
    roomId: string;
    /** Joined members, the owner included. */
    joined: number;
    left: number;
    banned: number;
    /** A stream token from half-way through the joins, for `/members?at=`. */
    oldToken: string;
    /** Members (all joined) at `oldToken`, the owner included. */
    membersAtOldToken: number;
  };
  sharing: PairInfo;
  disjoint: PairInfo;
  light: PairInfo;
  growth: PairInfo[];
  /** The largest room of the sharing pair's first user (for reads during writes). */
  readRoom: { roomId: string; joined: number };
  /** Pool rooms the write scenario's "many rooms" joins go to. */
  writeRoomIds: string[];
  writers: BenchUser[];
}

export type Progress = (message: string) => void;

/** Services whose transactions run inside the generator's batch when one is open. */
/** Batches between two ANALYZEs of a PostgreSQL build. */
const ANALYZE_EVERY = 20;

/**
 * Keeps PostgreSQL's planner statistics in step while a build grows the tables from
 * nothing: without them (autovacuum may be off, and is slow to react to a bulk load) the
 * planner believes the tables are empty and scans them whole for every event, which makes a
 * build quadratic. A no-op on SQLite.
 */
function statisticsKeeper(url: string, dialect: Storage['dialect']) {
  if (dialect !== 'postgres') return { tick: async () => {}, close: async () => {} };
  const client = new pg.Client({ connectionString: url });
  const connected = client.connect();
  let batches = 0;
  return {
    async tick() {
      batches += 1;
      if (batches % ANALYZE_EVERY !== 0) return;
      await connected;
      await client.query('ANALYZE');
    },
    async close() {
      await connected;
      await client.end();
    },
  };
}

/**
 * Commons' services over `real`, whose writes go into the transaction `batch` has open, so
 * that many operations share one commit; `afterBatch` runs after each.
 */
export function batchingServices(
  real: Storage,
  signingKey: Parameters<typeof createServices>[0]['signingKey'],
  afterBatch: () => Promise<void>,
) {
  let current: Stores | null = null;
  const defaults = loadConfig({ env: {} });
  const storage: Storage = {
    dialect: real.dialect,
    get stores() {
      return current ?? real.stores;
    },
    tx: (name, fn) => (current ? fn(current) : real.tx(name, fn)),
    changes: real.changes,
    ping: () => real.ping(),
    claimServerName: (candidate) => real.claimServerName(candidate),
    poolStats: () => real.poolStats(),
    close: () => real.close(),
  };
  const services = createServices({
    settings: {
      ...serviceSettingsOf(defaults),
      serverName: SERVER_NAME,
      registrationEnabled: false,
      registrationSharedSecret: null,
      passwordCostLog2N: 10,
    },
    storage,
    now: Date.now,
    signingKey,
  });
  async function batch<T>(name: string, fn: (stores: Stores) => Promise<T>): Promise<T> {
    const result = await real.tx(name, async (stores) => {
      current = stores;
      try {
        return await fn(stores);
      } finally {
        current = null;
      }
    });
    await afterBatch();
    return result;
  }
  return { services, batch };
}

/** Runs `op` for each item, `size` operations per transaction. */
async function inBatches<T>(
  batch: <R>(name: string, fn: (stores: Stores) => Promise<R>) => Promise<R>,
  name: string,
  items: readonly T[],
  size: number,
  op: (item: T, index: number, stores: Stores) => Promise<void>,
  progress?: (done: number) => void,
): Promise<void> {
  for (let start = 0; start < items.length; start += size) {
    const end = Math.min(items.length, start + size);
    await batch(name, async (stores) => {
      for (let i = start; i < end; i++) await op(items[i] as T, i, stores);
    });
    progress?.(end);
  }
}

const requester = (userId: string): Requester => ({ userId, deviceId: 'BENCHGEN', isAdmin: false });
const uid = (localpart: string) => `@${localpart}:${SERVER_NAME}`;

/**
 * Builds the dataset into the (empty) database at `url`, with the server secrets in
 * `dataDir` (the server must later run with the same data_dir).
 */
export async function generateDataset(options: {
  url: string;
  dataDir: string;
  dataset: DatasetProfile;
  profile: string;
  seed: number;
  progress?: Progress;
}): Promise<Manifest> {
  const { dataset: d, seed } = options;
  const log: Progress = options.progress ?? (() => {});
  const started = performance.now();
  const poolSize = Math.max(d.poolRooms, requiredPoolRooms(d));
  const bigRoomMembers = d.bigRoom.joined + d.bigRoom.left + d.bigRoom.banned;
  const backgroundCount = Math.max(d.backgroundUsers, bigRoomMembers, d.zipfMax + 1);
  const storage = await openStorage(options.url, { poolSize: 2 });
  const { signingKey } = loadServerSecrets(options.dataDir);
  const statistics = statisticsKeeper(options.url, storage.dialect);
  const { services, batch } = batchingServices(storage, signingKey, statistics.tick);
  const batchSize = storage.dialect === 'sqlite' ? 2000 : 400;
  let lastReport = 0;
  const report = (what: string, done: number, total: number) => {
    const now = performance.now();
    if (now - lastReport < 2000 && done < total) return;
    lastReport = now;
    const secs = ((now - started) / 1000).toFixed(0);
    log(`  [${secs}s] ${what}: ${done}/${total}`);
  };

  try {
    // Users: background users, the measured ones, writers. Tokens as a login issues them.
    const background = Array.from({ length: backgroundCount }, (_, i) => uid(`bg${i}`));
    const special = {
      owner: uid('bigroom-owner'),
      sharingA: uid('heavy-sharing-a'),
      sharingB: uid('heavy-sharing-b'),
      disjointA: uid('heavy-disjoint-a'),
      disjointB: uid('heavy-disjoint-b'),
      lightA: uid('light-a'),
      lightB: uid('light-b'),
    };
    const growthUsers = d.growth.map((n) => ({
      n,
      a: uid(`growth-${n}-a`),
      b: uid(`growth-${n}-b`),
    }));
    const writerIds = Array.from({ length: d.writers }, (_, i) => uid(`writer${i}`));
    const tokenUsers = [
      ...Object.values(special),
      ...growthUsers.flatMap((g) => [g.a, g.b]),
      ...writerIds,
    ];
    const allUsers = [...background, ...tokenUsers];
    const now = Date.now();
    await inBatches(
      batch,
      'benchUsers',
      allUsers,
      5000,
      async (userId, _i, stores) => {
        const localpart = userId.slice(1, userId.indexOf(':'));
        await stores.accounts.insertUser({
          userId,
          localpart,
          passwordHash: null,
          isAdmin: false,
          displayname: localpart,
          createdTs: now,
        });
      },
      (done) => report('users', done, allUsers.length),
    );
    const tokens = new Map<string, string>();
    await inBatches(batch, 'benchLogins', tokenUsers, batchSize, async (userId) => {
      const login = await services.accounts.issueLogin(userId, {
        deviceId: 'BENCH',
        displayName: 'benchmark',
        ip: null,
      });
      tokens.set(userId, login.accessToken);
    });
    const benchUser = (userId: string): BenchUser => ({
      userId,
      accessToken: tokens.get(userId) ?? '',
    });

    // The pool: public rooms created by background users; Zipf sizes by a random rank.
    const rng = seededRandom(seed, 'pool');
    const creators = Array.from(
      { length: poolSize },
      () => background[rng.int(backgroundCount)] as string,
    );
    const pool: string[] = new Array<string>(poolSize);
    const poolIndexes = Array.from({ length: poolSize }, (_, i) => i);
    await inBatches(
      batch,
      'benchPoolRooms',
      poolIndexes,
      Math.max(1, Math.floor(batchSize / 6)),
      async (i) => {
        const created = await createPublicRoom(services, creators[i] as string, `pool ${i}`);
        pool[i] = created;
      },
      (done) => report('pool rooms', done, poolSize),
    );

    const ranks = rng.shuffle(poolIndexes.slice());
    const poolJoins: [number, string][] = [];
    const joinedCount = new Array<number>(poolSize).fill(1);
    for (let rank = 1; rank <= poolSize; rank++) {
      const room = ranks[rank - 1] as number;
      const extra = Math.min(
        backgroundCount - 1,
        zipfSize(rank, d.zipfMax, d.zipfExponent, d.zipfFloor),
      );
      for (const member of rng.sample(backgroundCount, extra + 1)) {
        const userId = background[member] as string;
        if (userId === creators[room] || joinedCount[room]! > extra) continue;
        poolJoins.push([room, userId]);
        joinedCount[room]! += 1;
      }
    }
    await inBatches(
      batch,
      'benchPoolJoins',
      poolJoins,
      batchSize,
      async ([room, userId]) => {
        await services.membership.join(requester(userId), pool[room] as string);
      },
      (done) => report('pool memberships', done, poolJoins.length),
    );

    // Heavy, light and growth users join slices of the pool.
    const slices: [string, number, number][] = [];
    const addPair = (a: string, b: string, roomsEach: number, bStart: number) => {
      slices.push([a, 0, roomsEach], [b, bStart, bStart + roomsEach]);
    };
    const sp = d.sharingPair;
    addPair(special.sharingA, special.sharingB, sp.rooms, sp.rooms - sp.shared);
    addPair(special.disjointA, special.disjointB, d.disjointPair.rooms, d.disjointPair.rooms);
    const lp = d.lightPair;
    addPair(special.lightA, special.lightB, lp.rooms, lp.rooms - lp.shared);
    for (const g of growthUsers) addPair(g.a, g.b, g.n, Math.floor(g.n / 2));
    const sliceJoins = slices.flatMap(([userId, from, to]) =>
      Array.from({ length: to - from }, (_, k) => [userId, from + k] as const),
    );
    await inBatches(
      batch,
      'benchSliceJoins',
      sliceJoins,
      batchSize,
      async ([userId, room]) => {
        await services.membership.join(requester(userId), pool[room] as string);
        joinedCount[room]! += 1;
      },
      (done) => report('heavy and growth memberships', done, sliceJoins.length),
    );

    // The big room: joins in random order, a token half-way, then leaves and bans.
    const bigRoomId = await batch('benchBigRoom', () =>
      createPublicRoom(services, special.owner, 'big room'),
    );
    const bigRng = seededRandom(seed, 'big room');
    const bigMembers = bigRng.shuffle(background.slice(0, bigRoomMembers));
    const half = Math.floor(bigMembers.length / 2);
    let oldPosition = 0;
    await inBatches(
      batch,
      'benchBigRoomJoins',
      bigMembers,
      batchSize,
      async (userId, i, stores) => {
        await services.membership.join(requester(userId), bigRoomId);
        if (i === half - 1) oldPosition = await stores.rooms.selectCurrentStreamPosition();
      },
      (done) => report('big room joins', done, bigMembers.length),
    );
    if (half === 0) oldPosition = await storage.stores.rooms.selectCurrentStreamPosition();
    const leaving = bigMembers.slice(0, d.bigRoom.left);
    const banned = bigMembers.slice(d.bigRoom.left, d.bigRoom.left + d.bigRoom.banned);
    await inBatches(batch, 'benchBigRoomLeaves', leaving, batchSize, async (userId) => {
      await services.membership.leave(requester(userId), bigRoomId);
    });
    await inBatches(
      batch,
      'benchBigRoomBans',
      banned,
      batchSize,
      async (userId) => {
        await services.membership.ban(requester(special.owner), bigRoomId, userId, 'benchmark');
      },
      (done) => report('big room leaves and bans', done, banned.length),
    );

    const sliceSet = (from: number, to: number) => pool.slice(from, to);
    const pairInfo = (
      name: string,
      a: string,
      b: string,
      roomsEach: number,
      bStart: number,
      keepIds: boolean,
    ): PairInfo => {
      const bRooms = new Set(sliceSet(bStart, bStart + roomsEach));
      const shared = sliceSet(0, roomsEach).filter((r) => bRooms.has(r));
      return {
        name,
        a: benchUser(a),
        b: benchUser(b),
        roomsEach,
        shared: shared.length,
        ...(keepIds ? { sharedRoomIds: shared.sort() } : {}),
      };
    };
    let largest = 0;
    for (let i = 1; i < sp.rooms; i++) if (joinedCount[i]! > joinedCount[largest]!) largest = i;
    const writeRng = seededRandom(seed, 'writes');
    const events = await storage.stores.rooms.selectCurrentStreamPosition();
    const manifest: Manifest = {
      format: 1,
      profile: options.profile,
      seed,
      dataset: d,
      serverName: SERVER_NAME,
      builtAt: new Date().toISOString(),
      buildSeconds: +((performance.now() - started) / 1000).toFixed(1),
      events,
      users: allUsers.length,
      rooms: poolSize + 1,
      owner: benchUser(special.owner),
      bigRoom: {
        roomId: bigRoomId,
        joined: bigMembers.length - leaving.length - banned.length + 1,
        left: leaving.length,
        banned: banned.length,
        oldToken: `s${oldPosition}`,
        membersAtOldToken: half + 1,
      },
      sharing: pairInfo(
        'heavy sharing',
        special.sharingA,
        special.sharingB,
        sp.rooms,
        sp.rooms - sp.shared,
        true,
      ),
      disjoint: pairInfo(
        'heavy disjoint',
        special.disjointA,
        special.disjointB,
        d.disjointPair.rooms,
        d.disjointPair.rooms,
        false,
      ),
      light: pairInfo(
        'light',
        special.lightA,
        special.lightB,
        lp.rooms,
        lp.rooms - lp.shared,
        true,
      ),
      growth: growthUsers.map((g) =>
        pairInfo(`growth ${g.n}`, g.a, g.b, g.n, Math.floor(g.n / 2), false),
      ),
      readRoom: { roomId: pool[largest] as string, joined: joinedCount[largest]! },
      writeRoomIds: writeRng
        .sample(poolSize, Math.min(poolSize, 5000))
        .map((i) => pool[i] as string),
      writers: writerIds.map(benchUser),
    };
    log(
      `  built ${manifest.events} events, ${manifest.users} users, ${manifest.rooms} rooms in ${manifest.buildSeconds}s`,
    );
    return manifest;
  } finally {
    await statistics.close();
    await storage.close();
  }
}

async function createPublicRoom(
  services: Services,
  creator: string,
  name: string,
): Promise<string> {
  const { roomId } = await services.rooms.createRoom(requester(creator), {
    preset: 'public_chat',
    name,
  });
  return roomId;
}
