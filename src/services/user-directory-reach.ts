/**
 * User-directory reach after the event: a join rule change of a room bigger than
 * `user_directory.inline_reach_max_members` leaves a `user_directory_pending` row in its own
 * transaction (migration 0047) instead of moving every joined member's keys there (seconds
 * for thousands of members, with SQLite's one writer held). This worker takes the rows and
 * recomputes the members' reach a page at a time, each page one short transaction that moves
 * the row's cursor on (or deletes it after the last page), letting the event loop go between
 * pages. A process stopped part-way resumes from the cursor.
 *
 * Privacy while it converges (docs/api.md, user directory): a room that stopped being
 * public leaves a restrictive row, and a search does not show a member after its cursor by
 * their public reach (storage: `ungated`), so the restrictive direction takes effect with the
 * event; the permissive one (a room made public) shows its members to strangers only once
 * their page has run.
 *
 * With several processes on one database, one holds the lease (`push_sender_lease`, name
 * `user-directory-reach`); on SQLite one process owns the file and always holds it.
 */
import type { ServiceContext } from './context.js';
import { createPagedBacklog } from './background/paged-backlog.js';

const LEASE_MS = 15_000;
/** How often the worker looks for work other processes left (and renews the lease). */
const POLL_MS = 1000;
/** Members recomputed per transaction. */
const PAGE = 200;
const PENDING_SCAN = 20;

export function createDirectoryReachWorker(ctx: ServiceContext) {
  // The worker: start(options), idle() and stop() (background/paged-backlog.ts).
  return createPagedBacklog(ctx, {
    lease: 'user-directory-reach',
    what: 'user directory reach',
    leaseMs: LEASE_MS,
    pollMs: POLL_MS,
    scan: PENDING_SCAN,
    selectPending: (limit) => ctx.storage.stores.userDirectory.selectReachPending(limit),
    countPending: () => ctx.storage.stores.userDirectory.countReachPending(),
    page: ({ roomId }) =>
      ctx.storage.tx('userDirectoryReach', (tx) => tx.userDirectory.refreshReachPage(roomId, PAGE)),
  });
}

export type DirectoryReachWorker = ReturnType<typeof createDirectoryReachWorker>;
