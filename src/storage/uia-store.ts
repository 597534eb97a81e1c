/** User-interactive auth sessions and shared-secret registration nonces. */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface UiaSessionRow {
  sessionId: string;
  purpose: string;
  completed: string[];
  createdTs: number;
}

export interface UiaStore {
  insertSession(sessionId: string, purpose: string, ts: number): Promise<void>;
  selectSession(sessionId: string): Promise<UiaSessionRow | undefined>;
  updateCompleted(sessionId: string, completed: readonly string[]): Promise<void>;
  deleteSession(sessionId: string): Promise<void>;
  deleteSessionsBefore(ts: number): Promise<void>;
  insertNonce(nonce: string, ts: number): Promise<void>;
  /** Deletes the nonce; true when it existed and was created at or after `notBeforeTs`. */
  consumeNonce(nonce: string, notBeforeTs: number): Promise<boolean>;
}

export function uiaStore(db: Kysely<Database>): UiaStore {
  return {
    async insertSession(sessionId, purpose, ts) {
      await db
        .insertInto('uia_sessions')
        .values({ session_id: sessionId, purpose, completed: '[]', created_ts: ts })
        .execute();
    },

    async selectSession(sessionId) {
      const row = await db
        .selectFrom('uia_sessions')
        .selectAll()
        .where('session_id', '=', sessionId)
        .executeTakeFirst();
      if (!row) return undefined;
      return {
        sessionId: row.session_id,
        purpose: row.purpose,
        completed: JSON.parse(row.completed) as string[],
        createdTs: Number(row.created_ts),
      };
    },

    async updateCompleted(sessionId, completed) {
      await db
        .updateTable('uia_sessions')
        .set({ completed: JSON.stringify(completed) })
        .where('session_id', '=', sessionId)
        .execute();
    },

    async deleteSession(sessionId) {
      await db.deleteFrom('uia_sessions').where('session_id', '=', sessionId).execute();
    },

    async deleteSessionsBefore(ts) {
      await db.deleteFrom('uia_sessions').where('created_ts', '<', ts).execute();
    },

    async insertNonce(nonce, ts) {
      await db.insertInto('admin_registration_nonces').values({ nonce, created_ts: ts }).execute();
    },

    async consumeNonce(nonce, notBeforeTs) {
      const row = await db
        .deleteFrom('admin_registration_nonces')
        .where('nonce', '=', nonce)
        .returning('created_ts')
        .executeTakeFirst();
      return row !== undefined && Number(row.created_ts) >= notBeforeTs;
    },
  };
}
