/**
 * Push evaluation after the event (issue #24): an event into a room bigger than the inline
 * limit leaves a `push_pending` row in its own transaction (notifications.ts). This worker
 * takes those rows oldest first and evaluates the room's members a page at a time (100 to 2,000
 * members, sized to hold the event loop about 20 ms), each page one short transaction that writes the page's
 * push actions and push-gateway queue rows and moves the row's cursor on (or deletes it
 * after the last page), letting the event loop go between pages. A process killed part-way resumes from the cursor: a page is all written or
 * not at all, and rows already written are left as they are.
 *
 * Rows a page writes take a new stream position (`notified_at`), and the page announces the
 * notified users, so a waiting /sync (and sliding sync) wakes and answers the room with its new
 * `unread_notifications` though no event came. Counts are read as "rows after the user's read
 * receipt", so a receipt sent before the page is written still leaves them right.
 *
 * Members are those joined before the event: a member whose current member event is later is
 * looked up in the membership history. Power levels and the member count are the room's
 * current ones when the page runs (they rarely differ from the event's).
 *
 * With several processes on one database, one holds the lease (`push_sender_lease`, name
 * `push-evaluation`) and evaluates; on SQLite one process owns the file and always holds it.
 */
import { performance } from 'node:perf_hooks';
import type { RoomVersionId } from '../../core/pdu.js';
import type { PendingEvaluation, Stores } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';
import { createPagedBacklog } from '../background/paged-backlog.js';
import type { EvaluationContext, NotificationService } from './notifications.js';

const LEASE_MS = 15_000;
/** How often the worker looks for work other processes left (and renews the lease). */
const POLL_MS = 1000;
/**
 * Members evaluated per transaction: adapted after each page so that a page holds the event
 * loop about PAGE_TARGET_MS (on SQLite the whole page: its statements run on the event loop,
 * and other requests' reads wait for the transaction; on PostgreSQL the evaluation itself),
 * between MIN_PAGE and MAX_PAGE. Not smaller: on a loaded machine a
 * page's time is mostly waiting for a core, and smaller pages only add transactions.
 */
const FIRST_PAGE = 100;
const MIN_PAGE = 100;
const MAX_PAGE = 2000;
const PAGE_TARGET_MS = 20;
/** Users named per change announced (a PostgreSQL notification holds under 8,000 bytes). */
const USERS_PER_CHANGE = 100;
const PENDING_SCAN = 20;

export function createPushEvaluationWorker(
  ctx: ServiceContext,
  notifications: NotificationService,
  /** Tells the push sender that notifications were queued. */
  wakeSender: () => void,
) {
  /** The context of the event being evaluated (read once, kept across its pages). */
  let current: { streamOrdering: number; context: EvaluationContext | null } | null = null;
  let pageSize = FIRST_PAGE;

  async function contextFor(
    tx: Stores,
    pending: PendingEvaluation,
  ): Promise<EvaluationContext | null> {
    if (current?.streamOrdering === pending.streamOrdering) return current.context;
    const [stored] = await tx.relations.selectEventsByIds([pending.eventId]);
    const room = await tx.rooms.selectRoom(pending.roomId);
    const context =
      stored && room
        ? await notifications.contextOf(tx, {
            eventId: pending.eventId,
            roomId: pending.roomId,
            streamOrdering: pending.streamOrdering,
            pdu: stored.pdu,
            roomVersion: room.roomVersion as RoomVersionId,
          })
        : null;
    current = { streamOrdering: pending.streamOrdering, context };
    return context;
  }

  /** Evaluates the next page of the event's members; true when the event is done. */
  async function page(pending: PendingEvaluation): Promise<boolean> {
    let queued = false;
    const size = pageSize;
    const began = performance.now();
    const timing = { evaluationMs: 0 };
    const done = await ctx.storage.tx('pushEvaluation', async (tx) => {
      // Still pending, and where (another page may have run since the row was read).
      const row = await tx.push.selectPendingEvent(pending.streamOrdering);
      if (!row) return true;
      const context = await contextFor(tx, row);
      if (!context) {
        // The event is gone (purged): nothing to evaluate.
        await tx.push.deletePending(row.streamOrdering);
        return true;
      }
      const members = await tx.push.selectJoinedMembersPage(row.roomId, row.afterUser, size);
      const later = members.filter((m) => m.since > row.streamOrdering).map((m) => m.userId);
      const joinedBefore =
        later.length === 0
          ? new Set<string>()
          : await tx.push.selectJoinedBefore(row.roomId, later, row.streamOrdering);
      const concerned = members.filter(
        (m) => m.since < row.streamOrdering || joinedBefore.has(m.userId),
      );
      const done = members.length < size;
      const last = members[members.length - 1];
      if (done || !last) await tx.push.deletePending(row.streamOrdering);
      else await tx.push.advancePending(row.streamOrdering, last.userId);
      const rows = await notifications.evaluate(
        tx,
        context,
        concerned,
        () => tx.stream.nextPosition(),
        timing,
      );
      const users = rows.map((r) => r.userId);
      for (let i = 0; i < users.length; i += USERS_PER_CHANGE)
        await tx.stream.notify({ users: users.slice(i, i + USERS_PER_CHANGE) });
      queued = rows.length > 0;
      return done || !last;
    });
    // What held the event loop: on SQLite the whole page (its statements run on it), on
    // PostgreSQL the evaluation itself (the statements are waited for).
    const held = ctx.storage.dialect === 'sqlite' ? performance.now() - began : timing.evaluationMs;
    const took = Math.max(held, 0.1);
    pageSize = Math.round(Math.min(MAX_PAGE, Math.max(MIN_PAGE, (size * PAGE_TARGET_MS) / took)));
    // Committed: the sender may find what the page queued.
    if (queued) wakeSender();
    return done;
  }

  // The worker: start(options), idle() and stop() (background/paged-backlog.ts).
  return createPagedBacklog(ctx, {
    lease: 'push-evaluation',
    what: 'push evaluation',
    leaseMs: LEASE_MS,
    pollMs: POLL_MS,
    scan: PENDING_SCAN,
    selectPending: (limit) => ctx.storage.stores.push.selectPending(limit),
    countPending: () => ctx.storage.stores.push.countPending(),
    page,
    roundDone: () => {
      current = null;
    },
    roundFailed: () => {
      current = null;
    },
  });
}

export type PushEvaluationWorker = ReturnType<typeof createPushEvaluationWorker>;
