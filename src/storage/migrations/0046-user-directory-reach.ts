/**
 * The user directory answers a common word in a few index reads: every prefix of a user's
 * words is a key of `user_directory_search`, beside the user's reach — whom anyone may find
 * (2: joined to a public room), every local user when the directory searches all users
 * (1: a local user in no public room), or only those sharing a room with them (0) — and the
 * user ID. A search word and a reach are then one range of the key in user ID order, so
 * `LIMIT` stops the read at the first matches (before this, a word's every match was read and
 * its visibility checked one by one: 120–360 ms for a common word at 100,000 users).
 *
 * `user_directory.reach` keeps each user's reach, so a change of membership or join rule
 * knows which keys to replace. The words table of migration 0043 is replaced. On PostgreSQL
 * the prefix and user ID compare byte by byte (collation "C"), as SQLite does, so both
 * databases order results alike, and so does `user_directory.user_id`; SQLite keeps the rows
 * in the key alone (WITHOUT ROWID).
 */
import { sql, type Kysely } from 'kysely';
import { directoryPrefixes, directoryTerms } from '../../core/user-directory.js';
import { onSqlite } from './helpers.js';

const BATCH = 500;

interface Tables {
  users: { user_id: string };
  room_memberships: { room_id: string; user_id: string; membership: string };
  user_directory: {
    user_id: string;
    display_name: string | null;
    avatar_url: string | null;
    reach: number;
  };
  user_directory_terms: { term: string; user_id: string };
  user_directory_search: { prefix: string; reach: number; user_id: string };
  user_directory_public_rooms: { room_id: string };
}

export async function up(db: Kysely<unknown>): Promise<void> {
  const sqlite = onSqlite(db);
  const typed = db as unknown as Kysely<Tables>;
  await db.schema
    .alterTable('user_directory')
    .addColumn('reach', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  const bytewise = sqlite ? sql`` : sql`COLLATE "C"`;
  await db.schema
    .createTable('user_directory_search')
    .addColumn('prefix', 'text', (c) => c.notNull().modifyEnd(bytewise))
    .addColumn('reach', 'integer', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull().modifyEnd(bytewise))
    .addPrimaryKeyConstraint('user_directory_search_pk', ['prefix', 'reach', 'user_id'])
    .modifyEnd(sqlite ? sql`WITHOUT ROWID` : sql``)
    .execute();

  // The directory's user IDs compare byte by byte too, so that a search's join from the keys
  // to the entries uses this table's index (a join across collations could not).
  if (!sqlite)
    await sql`ALTER TABLE user_directory ALTER COLUMN user_id TYPE text COLLATE "C"`.execute(db);
  await sql`
    UPDATE user_directory SET reach = CASE
      WHEN EXISTS (
        SELECT 1 FROM room_memberships m
        JOIN user_directory_public_rooms p ON p.room_id = m.room_id
        WHERE m.user_id = user_directory.user_id AND m.membership = 'join') THEN 2
      WHEN EXISTS (SELECT 1 FROM users u WHERE u.user_id = user_directory.user_id) THEN 1
      ELSE 0 END
  `.execute(db);
  let after = '';
  for (;;) {
    const rows = await typed
      .selectFrom('user_directory')
      .select(['user_id', 'display_name', 'reach'])
      .where('user_id', '>', after)
      .orderBy('user_id')
      .limit(BATCH)
      .execute();
    if (rows.length === 0) break;
    const keys = rows.flatMap((row) =>
      directoryPrefixes(row.user_id, row.display_name).map((prefix) => ({
        prefix,
        reach: Number(row.reach),
        user_id: row.user_id,
      })),
    );
    for (let i = 0; i < keys.length; i += BATCH)
      await typed
        .insertInto('user_directory_search')
        .values(keys.slice(i, i + BATCH))
        .execute();
    after = rows[rows.length - 1]?.user_id ?? after;
  }
  await db.schema.dropTable('user_directory_terms').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const sqlite = onSqlite(db);
  const typed = db as unknown as Kysely<Tables>;
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
  let after = '';
  for (;;) {
    const rows = await typed
      .selectFrom('user_directory')
      .select(['user_id', 'display_name'])
      .where('user_id', '>', after)
      .orderBy('user_id')
      .limit(BATCH)
      .execute();
    if (rows.length === 0) break;
    const terms = rows.flatMap((row) =>
      directoryTerms(row.user_id, row.display_name).map((term) => ({ term, user_id: row.user_id })),
    );
    for (let i = 0; i < terms.length; i += BATCH)
      await typed
        .insertInto('user_directory_terms')
        .values(terms.slice(i, i + BATCH))
        .execute();
    after = rows[rows.length - 1]?.user_id ?? after;
  }
  await db.schema.dropTable('user_directory_search').execute();
  await db.schema.alterTable('user_directory').dropColumn('reach').execute();
  if (!sqlite)
    await sql`ALTER TABLE user_directory ALTER COLUMN user_id TYPE text COLLATE "default"`.execute(
      db,
    );
}
