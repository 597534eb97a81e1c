/** Hits and misses of the per-process caches, by name, for the metrics listener. */
export interface CacheCounts {
  hits: number;
  misses: number;
}

export class CacheStats {
  readonly caches = new Map<string, CacheCounts>();

  /** The counts of the cache named `name` (one object per name, for the cache to add to). */
  counter(name: string): CacheCounts {
    let counts = this.caches.get(name);
    if (!counts) this.caches.set(name, (counts = { hits: 0, misses: 0 }));
    return counts;
  }
}
