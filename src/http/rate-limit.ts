/**
 * Token-bucket rate limiting per user (per IP when anonymous), one bucket per class of
 * endpoint. Buckets live in process memory: they bound load, correctness never depends on them.
 */
import { limitExceeded } from '../core/errors.js';

export type RateLimitClassName =
  | 'default'
  | 'login'
  | 'registration'
  | 'message'
  | 'membership'
  | 'query'
  | 'mutual_rooms'
  | 'media_upload';

export interface BucketSettings {
  per_second: number;
  burst: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

const SWEEP_EVERY = 10_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private calls = 0;

  constructor(
    private readonly classes: Readonly<Record<RateLimitClassName, BucketSettings>>,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Takes one token for `key` in `className`, or throws 429 M_LIMIT_EXCEEDED. An admin's
   * override for the user (`override_ratelimit`) replaces the class's settings; 0 per second
   * and a burst of 0 mean never limited, as in Synapse.
   */
  take(
    className: RateLimitClassName,
    key: string,
    override?: { messagesPerSecond: number; burstCount: number } | null,
  ): void {
    if (override && override.messagesPerSecond <= 0 && override.burstCount <= 0) return;
    const settings = override
      ? {
          per_second: Math.max(override.messagesPerSecond, 0.001),
          burst: Math.max(1, override.burstCount),
        }
      : this.classes[className];
    const now = this.now();
    // An override has a bucket of its own, full when the override is set.
    const id = override
      ? `${className}\u0000${key}\u0000${override.messagesPerSecond}/${override.burstCount}`
      : `${className}\u0000${key}`;
    const bucket = this.buckets.get(id) ?? { tokens: settings.burst, updatedMs: now };
    bucket.tokens = Math.min(
      settings.burst,
      bucket.tokens + ((now - bucket.updatedMs) / 1000) * settings.per_second,
    );
    bucket.updatedMs = now;
    if (bucket.tokens < 1) {
      this.buckets.set(id, bucket);
      throw limitExceeded(Math.ceil(((1 - bucket.tokens) / settings.per_second) * 1000));
    }
    bucket.tokens -= 1;
    this.buckets.set(id, bucket);
    if (++this.calls % SWEEP_EVERY === 0) this.sweep(now);
  }

  /** Forgets buckets that have refilled completely. */
  private sweep(now: number): void {
    for (const [id, bucket] of this.buckets) {
      const className = id.slice(0, id.indexOf('\u0000')) as RateLimitClassName;
      const settings = this.classes[className];
      if (
        bucket.tokens + ((now - bucket.updatedMs) / 1000) * settings.per_second >=
        settings.burst
      ) {
        this.buckets.delete(id);
      }
    }
  }
}
