/**
 * Notifications: every event is checked against the push rules of each member it concerns
 * (the joined members but its sender; of a member event, only its target), in the event's own transaction (a
 * deriver), a page of members at a time with the event loop free between pages. What notifies
 * becomes a push action row; unread counts are the rows after the member's read receipts
 * (`m.read` and `m.read.private`; a threaded receipt for its thread), and `/notifications`
 * lists them.
 * https://spec.matrix.org/v1.19/client-server-api/#receiving-notifications
 */
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { powerLevelOf, type AuthStateEvent } from '../../core/auth-rules.js';
import { invalidParam } from '../../core/errors.js';
import type { ClientEvent } from '../../core/client-event.js';
import { stateKeyOf, type JsonObject, type RoomVersionId, type StateKey } from '../../core/pdu.js';
import { evaluatePushRules, type PushEvent } from '../../core/push-evaluator.js';
import { PUSH_RULES_TYPE, rulesetFromContent } from '../../core/push-rules.js';
import { parseUserId } from '../../core/identifiers.js';
import { relationOf } from '../../core/relations.js';
import type { PushActionRow, QueuedPush, Stores } from '../../storage/index.js';
import type { Requester, ServiceContext } from '../context.js';
import type { EventDeriver } from '../event-writer.js';
import type { TimelineService } from '../timeline.js';
import { createUnreadCounts, type RoomUnread } from './unread-counts.js';

/** Members evaluated per page (then the event loop is let go). */
export const MEMBER_PAGE = 500;
/** Rooms of up to this many joined members are evaluated in the event's own transaction. */
export const DEFAULT_INLINE_MEMBERS = 100;

/** What evaluating one event for its members needs, read once per event. */
export interface EvaluationContext {
  roomId: string;
  eventId: string;
  streamOrdering: number;
  sender: string;
  senderPowerLevel: number;
  notificationLevels: Record<string, number>;
  memberCount: number;
  pushEvent: PushEvent;
  threadId: string;
}
const MAX_NOTIFICATIONS_PAGE = 100;

export type { Counts, RoomUnread } from './unread-counts.js';

/** The thread an event belongs to: its `m.thread` root, or `main`. */
export function threadOf(content: JsonObject, type: string): string {
  const relation = relationOf(content, type);
  return relation?.relType === 'm.thread' ? relation.eventId : 'main';
}

function parseRules(text: string | undefined): JsonObject | undefined {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as JsonObject;
  } catch {
    return undefined;
  }
}

export function createNotificationService(ctx: ServiceContext, timeline: TimelineService) {
  const stores = () => ctx.storage.stores;

  /** What evaluating one event for its members needs, read once per event. */
  async function contextOf(
    tx: Stores,
    event: {
      eventId: string;
      roomId: string;
      streamOrdering: number;
      pdu: { type: string; sender: string; state_key?: string; content: JsonObject };
      roomVersion: RoomVersionId;
    },
    /** The room's joined members, when the caller has just counted them. */
    joined?: number,
  ): Promise<EvaluationContext> {
    const { pdu, roomId } = event;
    const state = await tx.rooms.selectStateEvents(roomId, [
      ['m.room.create', ''],
      ['m.room.power_levels', ''],
    ]);
    const authState = new Map<StateKey, AuthStateEvent>(
      state.map((r) => [
        stateKeyOf(r.pdu.type, r.pdu.state_key ?? ''),
        { ...r.pdu, event_id: r.eventId },
      ]),
    );
    const powerLevels = state.find((r) => r.pdu.type === 'm.room.power_levels')?.pdu.content;
    const rawLevels = powerLevels?.notifications;
    const notificationLevels: Record<string, number> = {};
    if (typeof rawLevels === 'object' && rawLevels !== null && !Array.isArray(rawLevels))
      for (const [key, value] of Object.entries(rawLevels))
        if (typeof value === 'number') notificationLevels[key] = value;
    return {
      roomId,
      eventId: event.eventId,
      streamOrdering: event.streamOrdering,
      sender: pdu.sender,
      senderPowerLevel: powerLevelOf(pdu.sender, authState, event.roomVersion),
      notificationLevels,
      memberCount: joined ?? (await tx.sync.selectMemberCounts([roomId])).get(roomId)?.joined ?? 0,
      pushEvent: {
        type: pdu.type,
        sender: pdu.sender,
        state_key: pdu.state_key,
        room_id: roomId,
        content: pdu.content,
      },
      threadId: threadOf(pdu.content, pdu.type),
    };
  }

  /**
   * Writes the rows of the members the event notifies (the sender is never notified) and
   * queues them for the members' pushers; returns the rows.
   */
  async function evaluate(
    tx: Stores,
    c: EvaluationContext,
    members: ReadonlyArray<{ userId: string; displayname: string | null }>,
    notifiedAt: () => Promise<number>,
    /** Gets the time spent evaluating (the part that holds the event loop) added to it. */
    timing: { evaluationMs: number } = { evaluationMs: 0 },
  ): Promise<PushActionRow[]> {
    const concerned = members.filter((m) => m.userId !== c.sender);
    if (concerned.length === 0) return [];
    const stored = await tx.push.selectPushRulesOfUsers(
      concerned.map((m) => m.userId),
      PUSH_RULES_TYPE,
    );
    const outcomes: Array<{ userId: string; highlight: boolean; actions: string }> = [];
    const began = performance.now();
    for (const member of concerned) {
      const ruleset = rulesetFromContent(parseRules(stored.get(member.userId)), member.userId);
      const outcome = evaluatePushRules(ruleset, c.pushEvent, {
        userId: member.userId,
        displayName: member.displayname,
        memberCount: c.memberCount,
        senderPowerLevel: c.senderPowerLevel,
        notificationLevels: c.notificationLevels,
      });
      if (outcome.notify)
        outcomes.push({
          userId: member.userId,
          highlight: outcome.highlight,
          actions: JSON.stringify(outcome.actions),
        });
    }
    timing.evaluationMs += performance.now() - began;
    if (outcomes.length === 0) return [];
    // Each notified member's pushers: a notification owed to their gateways, queued durably
    // with the rows (the sender delivers it; push/sender.ts).
    const pushers = await tx.pushers.selectPushersOfUsers(outcomes.map((o) => o.userId));
    const queued: QueuedPush[] = [];
    for (const outcome of outcomes)
      for (const pusher of pushers.get(outcome.userId) ?? [])
        queued.push({
          pusherId: pusher.pusherId,
          streamOrdering: c.streamOrdering,
          eventId: c.eventId,
          roomId: c.roomId,
          actions: outcome.actions,
        });
    if (queued.length > 0) await tx.pushers.insertQueued(queued);
    // Taken last (it holds the stream's counter until commit: other writers wait meanwhile).
    const position = await notifiedAt();
    const rows: PushActionRow[] = outcomes.map((o) => ({
      ...o,
      roomId: c.roomId,
      streamOrdering: c.streamOrdering,
      eventId: c.eventId,
      threadId: c.threadId,
      notifiedAt: position,
    }));
    await tx.push.insertPushActions(rows);
    return rows;
  }

  const inlineLimit = ctx.settings.pushInlineMembers ?? DEFAULT_INLINE_MEMBERS;

  /**
   * Evaluates the event for every member it concerns and records what notifies: here, in the
   * event's transaction, when the room has at most `inlineLimit` joined members (its counts
   * are then right the moment the event is); otherwise it leaves a pending row, in the same
   * transaction, for the evaluation worker (push/evaluation.ts). A member event concerns only
   * its target (`memberEventTarget`), evaluated here whatever the room's size.
   */
  const deriver: EventDeriver = async (tx: Stores, event) => {
    if (ctx.settings.pushEvaluation === false) return;
    const { pdu, roomId } = event;
    const at = async () => event.streamOrdering;
    if (pdu.type === 'm.room.member') {
      const target = await memberEventTarget(tx, event);
      if (target) await evaluate(tx, await contextOf(tx, event), [target], at);
      return;
    }
    const joined = (await tx.sync.selectMemberCounts([roomId])).get(roomId)?.joined ?? 0;
    const inline = joined <= inlineLimit;
    if (!inline) {
      await tx.push.insertPending({
        streamOrdering: event.streamOrdering,
        roomId,
        eventId: event.eventId,
        afterUser: '',
      });
      return;
    }
    let page = await tx.push.selectJoinedMembersPage(roomId, '', MEMBER_PAGE);
    // Nobody but the sender joined (a note-to-self room, a bridge's own room): nothing to
    // evaluate, so the room's power levels and the rest need not be read.
    if (page.every((m) => m.userId === pdu.sender)) return;
    const c = await contextOf(tx, event, joined);
    for (;;) {
      await evaluate(tx, c, page, at);
      const last = page[page.length - 1];
      if (page.length < MEMBER_PAGE || !last) break;
      await yieldToEventLoop();
      page = await tx.push.selectJoinedMembersPage(roomId, last.userId, MEMBER_PAGE);
    }
  };

  /**
   * The one member a member event is evaluated for, as Synapse does: its target, when that is a
   * user of this server other than the sender, and either invited by it or joined just before it
   * (a kick or a ban of a member, not a pre-emptive ban). The room's other members are not
   * evaluated: a rule of theirs matching member events (none of the default rules notifies of
   * one) is left unapplied, so a join or leave in a room of 10,000 costs one evaluation, not
   * 10,000 (docs/api.md, "Notifications").
   */
  async function memberEventTarget(
    tx: Stores,
    event: Parameters<EventDeriver>[1],
  ): Promise<{ userId: string; displayname: string | null } | null> {
    const { pdu } = event;
    const target = pdu.state_key;
    if (typeof target !== 'string' || target === pdu.sender) return null;
    if (parseUserId(target)?.serverName !== ctx.settings.serverName) return null;
    if (pdu.content.membership !== 'invite') {
      const before = await tx.push.selectJoinedBefore(event.roomId, [target], event.streamOrdering);
      if (!before.has(target)) return null;
    }
    const displayname = pdu.content.displayname;
    return { userId: target, displayname: typeof displayname === 'string' ? displayname : null };
  }

  const unread = createUnreadCounts(() => stores().push, ctx.storage.changes);

  /**
   * The user's unread counts in each of these rooms, of the push actions written up to `upTo`
   * (a stream position already read; the current one if not given).
   */
  async function unreadOf(
    userId: string,
    roomIds: readonly string[],
    upTo?: number,
  ): Promise<Map<string, RoomUnread>> {
    if (roomIds.length === 0) return new Map();
    const position = upTo ?? (await stores().stream.selectCurrentPosition());
    return unread.unreadOf(userId, roomIds, position);
  }

  /** The user's unread notifications across all their joined rooms (a push's badge). */
  async function totalUnread(userId: string): Promise<number> {
    const rooms = await stores().rooms.selectRoomsOfUser(userId, 'join');
    let total = 0;
    for (const room of (await unreadOf(userId, rooms)).values())
      total += room.total.notification_count;
    return total;
  }

  return {
    deriver,
    contextOf,
    evaluate,
    unreadOf,
    totalUnread,
    notifiedBetween: (userId: string, after: number, upTo: number) =>
      stores().push.selectRoomsNotifiedBetween(userId, after, upTo),

    /** `GET /notifications`: the user's notifications, newest first. */
    async notifications(
      requester: Requester,
      options: { from?: string | undefined; limit: number; only?: string | undefined },
    ): Promise<{ notifications: JsonObject[]; next_token?: string }> {
      let before = Number.MAX_SAFE_INTEGER;
      if (options.from !== undefined) {
        if (!/^[0-9]{1,15}$/.test(options.from)) throw invalidParam('Invalid from token');
        before = Number(options.from);
      }
      const limit = Math.max(1, Math.min(options.limit, MAX_NOTIFICATIONS_PAGE));
      const rows = await stores().push.selectNotifications(
        requester.userId,
        before,
        limit + 1,
        options.only === 'highlight',
      );
      const page = rows.slice(0, limit);
      const roomIds = [...new Set(page.map((r) => r.roomId))];
      const marks = await stores().push.selectReadMarks(requester.userId, roomIds);
      const markOf = (roomId: string, threadId: string) =>
        Math.max(
          0,
          ...marks
            .filter((m) => m.roomId === roomId && (m.threadId === '' || m.threadId === threadId))
            .map((m) => m.streamOrdering),
        );
      const events = await stores().relations.selectEventsByIds(page.map((r) => r.eventId));
      const byId = new Map(events.map((e) => [e.eventId, e]));
      const versions = new Map<string, RoomVersionId>();
      for (const roomId of roomIds)
        versions.set(
          roomId,
          ((await stores().rooms.selectRoom(roomId))?.roomVersion ?? '10') as RoomVersionId,
        );
      const notifications: JsonObject[] = [];
      for (const row of page) {
        const stored = byId.get(row.eventId);
        if (!stored) continue;
        const event: ClientEvent = await timeline.present(stored, versions.get(row.roomId) ?? '10');
        notifications.push({
          actions: JSON.parse(row.actions) as JsonObject[],
          event: event as unknown as JsonObject,
          read: row.streamOrdering <= markOf(row.roomId, row.threadId),
          room_id: row.roomId,
          ts: stored.pdu.origin_server_ts,
        });
      }
      const last = page[page.length - 1];
      return rows.length > limit && last
        ? { notifications, next_token: String(last.streamOrdering) }
        : { notifications };
    },
  };
}

export type NotificationService = ReturnType<typeof createNotificationService>;
