/**
 * Reports of content: clients report events, rooms and users (spec: POST
 * /rooms/{roomId}/report/{eventId}, /rooms/{roomId}/report, /users/{userId}/report); server
 * admins read and delete them (Synapse's /_synapse/admin/v1/event_reports).
 * https://element-hq.github.io/synapse/latest/admin_api/event_reports.html
 */
import { invalidParam, notFound } from '../../core/errors.js';
import { parseUserId } from '../../core/identifiers.js';
import type { JsonObject } from '../../core/pdu.js';
import type { ContentReportRow, ReportQuery } from '../../storage/index.js';
import type { Requester, ServiceContext } from '../context.js';

/** A report as Synapse's event_reports list shows it. */
export interface ReportSummary {
  id: number;
  received_ts: number;
  room_id: string | null;
  name: string | null;
  canonical_alias: string | null;
  event_id: string | null;
  /** The reporter. */
  user_id: string;
  /** The reported event's sender (event reports) or the reported user (user reports). */
  sender: string | null;
  reason: string | null;
  score: number | null;
}

export interface ReportPage {
  reports: ReportSummary[];
  total: number;
  nextOffset: number | null;
}

export function createReportService(ctx: ServiceContext) {
  const stores = ctx.storage.stores;

  async function insert(
    requester: Requester,
    report: {
      roomId: string | null;
      eventId: string | null;
      targetUserId: string | null;
      reason: string | null;
      score: number | null;
    },
  ): Promise<void> {
    await ctx.storage.tx('insertReport', (tx) =>
      tx.admin.insertReport({ ...report, reporter: requester.userId, receivedTs: ctx.now() }),
    );
  }

  async function roomLabels(roomId: string | null) {
    if (roomId === null) return { name: null, canonical_alias: null };
    const state = await stores.rooms.selectStateEvents(roomId, [
      ['m.room.name', ''],
      ['m.room.canonical_alias', ''],
    ]);
    const field = (type: string, key: string) => {
      const value = state.find((e) => e.pdu.type === type)?.pdu.content[key];
      return typeof value === 'string' ? value : null;
    };
    return {
      name: field('m.room.name', 'name'),
      canonical_alias: field('m.room.canonical_alias', 'alias'),
    };
  }

  async function summarise(row: ContentReportRow): Promise<ReportSummary> {
    const event = row.eventId ? await stores.rooms.selectEvent(row.eventId) : undefined;
    return {
      id: row.id,
      received_ts: row.receivedTs,
      room_id: row.roomId,
      ...(await roomLabels(row.roomId)),
      event_id: row.eventId,
      user_id: row.reporter,
      sender: event?.pdu.sender ?? row.targetUserId,
      reason: row.reason,
      score: row.score,
    };
  }

  return {
    /** An event of a room the requester is joined to; 404 otherwise (the spec's answer). */
    async reportEvent(
      requester: Requester,
      roomId: string,
      eventId: string,
      reason: string | null,
      score: number | null,
    ): Promise<void> {
      const membership = await stores.rooms.selectMembership(roomId, requester.userId);
      const event = await stores.rooms.selectEvent(eventId);
      if (membership?.membership !== 'join' || !event || event.roomId !== roomId) {
        throw notFound("Unable to report event: it does not exist or you aren't able to see it.");
      }
      await insert(requester, { roomId, eventId, targetUserId: null, reason, score });
    },

    async reportRoom(requester: Requester, roomId: string, reason: string): Promise<void> {
      if (!(await stores.rooms.selectRoom(roomId))) throw notFound('Room does not exist');
      await insert(requester, { roomId, eventId: null, targetUserId: null, reason, score: null });
    },

    /** A local user that exists, or any remote user (whose existence cannot be told). */
    async reportUser(requester: Requester, userId: string, reason: string): Promise<void> {
      const parsed = parseUserId(userId);
      if (!parsed) throw invalidParam('Invalid user ID');
      if (
        parsed.serverName === ctx.settings.serverName &&
        !(await stores.accounts.selectUser(parsed.userId))
      ) {
        throw notFound('User does not exist');
      }
      await insert(requester, {
        roomId: null,
        eventId: null,
        targetUserId: parsed.userId,
        reason,
        score: null,
      });
    },

    async list(query: ReportQuery): Promise<ReportPage> {
      const { rows, total } = await stores.admin.selectReports(query);
      const end = query.offset + rows.length;
      return {
        reports: await Promise.all(rows.map(summarise)),
        total,
        nextOffset: end < total ? end : null,
      };
    },

    /** One report with the reported event as stored (`event_json`, Synapse's details). */
    async get(id: number): Promise<ReportSummary & { event_json: JsonObject | null }> {
      const row = await stores.admin.selectReport(id);
      if (!row) throw notFound('Event report not found');
      const event = row.eventId ? await stores.rooms.selectEvent(row.eventId) : undefined;
      return {
        ...(await summarise(row)),
        event_json: event ? (event.pdu as unknown as JsonObject) : null,
      };
    },

    async delete(id: number): Promise<void> {
      if (!(await stores.admin.deleteReport(id))) throw notFound('Event report not found');
    },
  };
}

export type ReportService = ReturnType<typeof createReportService>;
