/**
 * The user directory: one row per user that can be found (local users from their profile,
 * other servers' users from member events), the folded words each is found by, indexed for
 * prefix search, and the rooms whose join rule is public (whose members anyone may find).
 * Words are compared byte by byte (PostgreSQL: collation "C"), so a prefix is a range.
 */
import { sql, type Kysely } from 'kysely';
import { directoryTerms } from '../../core/user-directory.js';
import { onSqlite } from './helpers.js';

const BATCH = 500;

export async function up(db: Kysely<unknown>): Promise<void> {
  const sqlite = onSqlite(db);
  await db.schema
    .createTable('user_directory')
    .addColumn('user_id', 'text', (c) => c.primaryKey())
    .addColumn('display_name', 'text')
    .addColumn('avatar_url', 'text')
    .execute();
  await db.schema
    .createTable('user_directory_terms')
    .addColumn('term', 'text', (c) =>
      sqlite ? c.notNull() : c.notNull().modifyEnd(sql`COLLATE "C"`),
    )
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('user_directory_terms_pk', ['term', 'user_id'])
    .execute();
  await db.schema
    .createIndex('user_directory_terms_by_user')
    .on('user_directory_terms')
    .column('user_id')
    .execute();
  await db.schema
    .createTable('user_directory_public_rooms')
    .addColumn('room_id', 'text', (c) => c.primaryKey())
    .execute();

  // Every local user as their profile is now.
  const typed = db as unknown as Kysely<{
    users: { user_id: string; deactivated: number };
    profiles: { user_id: string; displayname: string | null; avatar_url: string | null };
    user_directory: { user_id: string; display_name: string | null; avatar_url: string | null };
    user_directory_terms: { term: string; user_id: string };
    user_directory_public_rooms: { room_id: string };
    current_state: { room_id: string; type: string; state_key: string; event_id: string };
    events: { event_id: string; client_json: string | null };
  }>;
  let after = '';
  for (;;) {
    const rows = await typed
      .selectFrom('users')
      .leftJoin('profiles', 'profiles.user_id', 'users.user_id')
      .select(['users.user_id', 'profiles.displayname', 'profiles.avatar_url'])
      .where('users.user_id', '>', after)
      .where('users.deactivated', '=', 0)
      .orderBy('users.user_id')
      .limit(BATCH)
      .execute();
    if (rows.length === 0) break;
    await typed
      .insertInto('user_directory')
      .values(
        rows.map((row) => ({
          user_id: row.user_id,
          display_name: row.displayname,
          avatar_url: row.avatar_url,
        })),
      )
      .execute();
    const terms = rows.flatMap((row) =>
      directoryTerms(row.user_id, row.displayname).map((term) => ({ term, user_id: row.user_id })),
    );
    for (let i = 0; i < terms.length; i += BATCH)
      await typed
        .insertInto('user_directory_terms')
        .values(terms.slice(i, i + BATCH))
        .execute();
    after = rows[rows.length - 1]?.user_id ?? after;
  }

  // Rooms whose join rule is public now.
  const rules = await typed
    .selectFrom('current_state')
    .innerJoin('events', 'events.event_id', 'current_state.event_id')
    .select(['current_state.room_id', 'events.client_json'])
    .where('current_state.type', '=', 'm.room.join_rules')
    .where('current_state.state_key', '=', '')
    .execute();
  const publicRooms = rules
    .filter((row) => {
      try {
        const event = JSON.parse(row.client_json ?? '{}') as { content?: { join_rule?: unknown } };
        return event.content?.join_rule === 'public';
      } catch {
        return false;
      }
    })
    .map((row) => ({ room_id: row.room_id }));
  for (let i = 0; i < publicRooms.length; i += BATCH)
    await typed
      .insertInto('user_directory_public_rooms')
      .values(publicRooms.slice(i, i + BATCH))
      .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('user_directory_public_rooms').execute();
  await db.schema.dropTable('user_directory_terms').execute();
  await db.schema.dropTable('user_directory').execute();
}
