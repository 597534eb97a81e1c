/**
 * `commons port-db --from sqlite:PATH --to postgres://…`: moves a SQLite database to an
 * empty PostgreSQL database (src/storage/port.ts), saying how far it got table by table.
 * The server must be stopped (the port refuses while one holds the SQLite file); afterwards
 * point `database.url` at PostgreSQL and keep `data_dir` (its signing and token keys).
 */
import { parseArgs } from 'node:util';
import { portSqliteToPostgres } from './storage/port.js';

export const PORT_DB_USAGE = 'commons port-db --from sqlite:PATH --to postgres://USER@HOST/DB';

/** Runs the subcommand; resolves with the exit status, having written its messages. */
export async function runPortDb(
  args: string[],
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: { from: { type: 'string' }, to: { type: 'string' } },
    }));
  } catch (e) {
    err(`port-db: ${(e as Error).message}\nusage: ${PORT_DB_USAGE}`);
    return 2;
  }
  const from = values.from;
  const to = values.to;
  if (!from || !to) {
    err(`port-db: --from and --to are required\nusage: ${PORT_DB_USAGE}`);
    return 2;
  }
  if (!from.startsWith('sqlite:')) {
    err(`port-db: --from must be a SQLite database (sqlite:PATH), not ${from}`);
    return 2;
  }
  if (!/^postgres(ql)?:\/\//.test(to)) {
    err(`port-db: --to must be a PostgreSQL URL (postgres://…), not ${redact(to)}`);
    return 2;
  }
  try {
    out(`porting ${from} to ${redact(to)}`);
    const result = await portSqliteToPostgres(from, to, out);
    const rows = result.tables.reduce((sum, t) => sum + t.rows, 0);
    out(`done: ${rows} rows in ${result.tables.length} tables`);
    return 0;
  } catch (e) {
    err(`port-db: ${(e as Error).message}`);
    return 1;
  }
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}
