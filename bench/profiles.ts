/**
 * Dataset sizes and measurement settings. `full` is the shape the issue asks for (Matrix HQ
 * scale); `quick` keeps every scenario but shrinks it to run in well under three minutes;
 * `tiny` is for the smoke test.
 */

export interface DatasetProfile {
  /** Rooms everyone else lives in; heavy and growth users join slices of this pool. */
  poolRooms: number;
  /** Background users: the big room's members and the pool rooms' members come from these. */
  backgroundUsers: number;
  /** Zipf shape of pool room sizes (extra members besides the creator). */
  zipfMax: number;
  zipfExponent: number;
  zipfFloor: number;
  bigRoom: { joined: number; left: number; banned: number };
  /** Two users in `rooms` rooms each, sharing `shared`. */
  sharingPair: { rooms: number; shared: number };
  /** Two users in `rooms` rooms each, sharing none. */
  disjointPair: { rooms: number };
  lightPair: { rooms: number; shared: number };
  /** Rooms per user for each growth pair; each pair shares half of its rooms. */
  growth: number[];
  /** Users with tokens who only write (joins in the write scenario). */
  writers: number;
}

export interface LoadSettings {
  /** Seconds of unmeasured load before the runs. */
  warmupSeconds: number;
  /** Seconds per measured run. */
  durationSeconds: number;
  runs: number;
  /** Connections for the throughput runs (latency runs use one). */
  connections: number;
  /** Repetitions of a sequential request (big room, walks, the workaround). */
  repeats: number;
  /** Concurrent requests the workaround client keeps in flight. */
  workaroundConcurrency: number;
  /** Seconds of each write run, and its writer connections. */
  writeSeconds: number;
  writeConnections: number;
}

export interface Profile {
  name: 'full' | 'quick' | 'tiny';
  dataset: DatasetProfile;
  load: LoadSettings;
}

const FULL: Profile = {
  name: 'full',
  dataset: {
    poolRooms: 150_000,
    backgroundUsers: 125_000,
    zipfMax: 10_000,
    zipfExponent: 1.1,
    zipfFloor: 1,
    bigRoom: { joined: 100_000, left: 15_000, banned: 5_000 },
    sharingPair: { rooms: 20_000, shared: 10_000 },
    disjointPair: { rooms: 20_000 },
    lightPair: { rooms: 30, shared: 8 },
    growth: [100, 1_000, 10_000, 100_000],
    writers: 5_000,
  },
  load: {
    warmupSeconds: 2,
    durationSeconds: 5,
    runs: 5,
    connections: 10,
    repeats: 5,
    workaroundConcurrency: 8,
    writeSeconds: 10,
    writeConnections: 4,
  },
};

const QUICK: Profile = {
  name: 'quick',
  dataset: {
    poolRooms: 1_500,
    backgroundUsers: 3_200,
    zipfMax: 200,
    zipfExponent: 1.1,
    zipfFloor: 1,
    bigRoom: { joined: 2_500, left: 400, banned: 100 },
    sharingPair: { rooms: 1_000, shared: 500 },
    disjointPair: { rooms: 750 },
    lightPair: { rooms: 30, shared: 8 },
    growth: [100, 1_000],
    writers: 300,
  },
  load: {
    warmupSeconds: 0.2,
    durationSeconds: 0.5,
    runs: 3,
    connections: 10,
    repeats: 3,
    workaroundConcurrency: 8,
    writeSeconds: 1.5,
    writeConnections: 4,
  },
};

const TINY: Profile = {
  name: 'tiny',
  dataset: {
    poolRooms: 60,
    backgroundUsers: 60,
    zipfMax: 8,
    zipfExponent: 1.1,
    zipfFloor: 1,
    bigRoom: { joined: 40, left: 6, banned: 4 },
    sharingPair: { rooms: 30, shared: 15 },
    disjointPair: { rooms: 30 },
    lightPair: { rooms: 6, shared: 2 },
    growth: [10, 40],
    writers: 20,
  },
  load: {
    warmupSeconds: 0.1,
    durationSeconds: 0.2,
    runs: 1,
    connections: 2,
    repeats: 1,
    workaroundConcurrency: 4,
    writeSeconds: 0.3,
    writeConnections: 2,
  },
};

export const PROFILES = { full: FULL, quick: QUICK, tiny: TINY } as const;

/** Scales every count of a dataset (for a full-shaped run on a smaller budget). */
export function scaleDataset(dataset: DatasetProfile, scale: number): DatasetProfile {
  if (scale === 1) return dataset;
  const n = (value: number) => Math.max(1, Math.round(value * scale));
  return {
    ...dataset,
    poolRooms: n(dataset.poolRooms),
    backgroundUsers: n(dataset.backgroundUsers),
    zipfMax: n(dataset.zipfMax),
    bigRoom: {
      joined: n(dataset.bigRoom.joined),
      left: n(dataset.bigRoom.left),
      banned: n(dataset.bigRoom.banned),
    },
    sharingPair: { rooms: n(dataset.sharingPair.rooms), shared: n(dataset.sharingPair.shared) },
    disjointPair: { rooms: n(dataset.disjointPair.rooms) },
    growth: [...new Set(dataset.growth.map(n))],
    writers: n(dataset.writers),
  };
}

/** Pool rooms the layout needs: the heavy and growth slices must fit in the pool. */
export function requiredPoolRooms(dataset: DatasetProfile): number {
  const sharing = 2 * dataset.sharingPair.rooms - dataset.sharingPair.shared;
  const disjoint = 2 * dataset.disjointPair.rooms;
  const growth = Math.max(0, ...dataset.growth.map((n) => n + Math.floor(n / 2)));
  const light = 2 * dataset.lightPair.rooms - dataset.lightPair.shared;
  return Math.max(sharing, disjoint, growth, light);
}
