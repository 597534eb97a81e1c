/**
 * Waiting for another process to see a change. Between server processes on one PostgreSQL
 * database, caches are dropped when the change's notification arrives, a moment after the
 * writer's commit (docs/architecture.md, "Caches kept by the change feed"); a test that asks
 * another process right after a write asks again until it holds, within a bound.
 */

/** Asks until `done` holds, 5 s at most, and returns the last answer (the caller asserts it). */
export async function eventually<T>(
  ask: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await ask();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
