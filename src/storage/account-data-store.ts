/** Account data: global (room_id '') and per room, one row per user, room and type. */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface AccountDataRow {
  /** '' for global account data. */
  roomId: string;
  type: string;
  /** The content as JSON text. */
  content: string;
  streamOrdering: number;
}

export interface AccountDataStore {
  /** Inserts or replaces the entry, which takes the stream position `position`. */
  upsertAccountData(
    userId: string,
    roomId: string,
    type: string,
    content: string,
    position: number,
  ): Promise<void>;
  /** The content (JSON text) of one entry. */
  selectAccountData(userId: string, roomId: string, type: string): Promise<string | undefined>;
  /** The user's entries written in (after, upTo], oldest first. */
  selectAccountDataChanges(userId: string, after: number, upTo: number): Promise<AccountDataRow[]>;
}

export function accountDataStore(db: Kysely<Database>): AccountDataStore {
  return {
    async upsertAccountData(userId, roomId, type, content, position) {
      await db
        .insertInto('account_data')
        .values({ user_id: userId, room_id: roomId, type, content, stream_ordering: position })
        .onConflict((oc) =>
          oc
            .columns(['user_id', 'room_id', 'type'])
            .doUpdateSet({ content, stream_ordering: position }),
        )
        .execute();
    },

    async selectAccountData(userId, roomId, type) {
      const row = await db
        .selectFrom('account_data')
        .select('content')
        .where('user_id', '=', userId)
        .where('room_id', '=', roomId)
        .where('type', '=', type)
        .executeTakeFirst();
      return row?.content;
    },

    async selectAccountDataChanges(userId, after, upTo) {
      const rows = await db
        .selectFrom('account_data')
        .select(['room_id', 'type', 'content', 'stream_ordering'])
        .where('user_id', '=', userId)
        .where('stream_ordering', '>', after)
        .where('stream_ordering', '<=', upTo)
        .orderBy('stream_ordering')
        .execute();
      return rows.map((row) => ({
        roomId: row.room_id,
        type: row.type,
        content: row.content,
        streamOrdering: Number(row.stream_ordering),
      }));
    },
  };
}
