/**
 * Loads a built SQLite dataset into an empty PostgreSQL database, row for row: the full
 * profile's PostgreSQL dataset. Building it through the services on PostgreSQL takes well over
 * an hour on this machine (a dozen round trips per event, 1.5 million events), while the rows
 * are the same the SQLite build wrote through the same code: real events, auth checks and
 * stream positions, signed with the key the runs then use. The copying is `commons port-db`'s
 * (src/storage/port.ts).
 */
import { portSqliteToPostgres } from '../src/storage/port.js';
import type { Progress } from './generate.js';

export async function copySqliteToPostgres(
  sqliteFile: string,
  postgresUrl: string,
  progress: Progress,
): Promise<void> {
  await portSqliteToPostgres(`sqlite:${sqliteFile}`, postgresUrl, (line) => progress(`  ${line}`));
}
