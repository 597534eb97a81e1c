/**
 * Seeded randomness for the dataset generator: the same seed gives the same dataset (the
 * same users, room sizes and memberships; event IDs differ because events carry timestamps).
 */

/** A 32-bit hash of a string (FNV-1a), to derive one independent stream per purpose. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export interface Random {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** Shuffles `items` in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[];
  /** `count` distinct integers from [0, n), in random order. */
  sample(n: number, count: number): number[];
}

/** mulberry32: small, fast and good enough for shaping a dataset. */
export function seededRandom(seed: number, purpose = ''): Random {
  let state = (seed ^ hash32(purpose)) >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next,
    int,
    shuffle<T>(items: T[]): T[] {
      for (let i = items.length - 1; i > 0; i--) {
        const j = int(i + 1);
        const tmp = items[i] as T;
        items[i] = items[j] as T;
        items[j] = tmp;
      }
      return items;
    },
    sample(n: number, count: number): number[] {
      if (count >= n) return this.shuffle(Array.from({ length: n }, (_, i) => i));
      const chosen = new Set<number>();
      while (chosen.size < count) chosen.add(int(n));
      return [...chosen];
    },
  };
}

/**
 * Zipf-shaped sizes: the room at rank r (1-based) gets round(max · r^-s) members, at least
 * `floor`. With s near 1 a few rooms are large and most are small, as on the network.
 */
export function zipfSize(rank: number, max: number, exponent: number, floor: number): number {
  return Math.max(floor, Math.round(max * Math.pow(rank, -exponent)));
}
