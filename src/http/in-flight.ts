/**
 * Counts the request handlers still running, so a shutdown closes the database only after
 * the last of them: a handler whose client went away (or whose connection was cut at the
 * shutdown deadline) keeps running, and a query it made on a closed pool failed with
 * "driver has already been destroyed".
 */
export class InFlight {
  private running = 0;
  private waiters: (() => void)[] = [];

  get count(): number {
    return this.running;
  }

  /** Counts `work` until it settles; returns it. */
  track<T>(work: Promise<T>): Promise<T> {
    this.running++;
    const done = () => {
      if (--this.running === 0) for (const wake of this.waiters.splice(0)) wake();
    };
    work.then(done, done);
    return work;
  }

  /** Resolves true once nothing runs, or false after `timeoutMs` with something still running. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.running === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        resolve(false);
      }, timeoutMs);
      this.waiters.push(wake);
    });
  }
}
