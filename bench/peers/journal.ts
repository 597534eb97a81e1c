/**
 * The peers bench's build journal: one JSON record a line, appended as each step of building
 * the dataset on a server succeeds (an account registered, a room made, a join or a leave
 * done), so that a build that was killed, or stopped at the end of a session, carries on where
 * it stopped on the next run with the same shape instead of starting over. A data directory
 * counts as built only once its journal ends with `done`.
 *
 * Before each room is created a `creating` record is written: a room the server made whose
 * answer never came back (the build stopped in between) is found on resuming (a joined room of
 * its creator's that the journal does not know) and left, so that every count stays the
 * shape's.
 */
import { appendFileSync, existsSync, readFileSync, truncateSync } from 'node:fs';
import type { Account } from './client.js';
import type { DatasetShape } from './dataset.js';

export type JournalRecord =
  | { t: 'shape'; shape: DatasetShape }
  | { t: 'account'; name: string; userId: string; token: string }
  | { t: 'creating'; key: string }
  | { t: 'room'; key: string; roomId: string }
  /** `member` joined the room `key` names (an account's name, e.g. member_12 or pair_b). */
  | { t: 'joined'; key: string; member: string }
  | { t: 'left'; key: string; member: string }
  | { t: 'at'; token: string }
  /** Seconds of building so far, over every session (written now and then, and at the end). */
  | { t: 'seconds'; seconds: number }
  | { t: 'done' };

/** What a journal says has been done. */
export interface JournalState {
  shape: DatasetShape | null;
  accounts: Map<string, Account>;
  rooms: Map<string, string>;
  /** Room keys whose creation was begun and not recorded as finished. */
  pendingCreates: Set<string>;
  /** `${key} ${member}` of each join (and each leave) recorded. */
  joined: Set<string>;
  left: Set<string>;
  atToken: string | null;
  seconds: number;
  done: boolean;
  records: number;
}

export function emptyState(): JournalState {
  return {
    shape: null,
    accounts: new Map(),
    rooms: new Map(),
    pendingCreates: new Set(),
    joined: new Set(),
    left: new Set(),
    atToken: null,
    seconds: 0,
    done: false,
    records: 0,
  };
}

/** Applies one record to a state (the replay of a journal, and the live state while building). */
export function apply(state: JournalState, record: JournalRecord): void {
  state.records++;
  switch (record.t) {
    case 'shape':
      state.shape = record.shape;
      break;
    case 'account':
      state.accounts.set(record.name, { userId: record.userId, token: record.token });
      break;
    case 'creating':
      state.pendingCreates.add(record.key);
      break;
    case 'room':
      state.rooms.set(record.key, record.roomId);
      state.pendingCreates.delete(record.key);
      break;
    case 'joined':
      state.joined.add(`${record.key} ${record.member}`);
      break;
    case 'left':
      state.left.add(`${record.key} ${record.member}`);
      break;
    case 'at':
      state.atToken = record.token;
      break;
    case 'seconds':
      state.seconds = record.seconds;
      break;
    case 'done':
      state.done = true;
      break;
  }
}

/**
 * The state a journal's text describes. A last line cut short (the process killed while
 * writing it) is ignored: its step is simply done again.
 */
export function replay(text: string): JournalState {
  const state = emptyState();
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let record: JournalRecord;
    try {
      record = JSON.parse(line) as JournalRecord;
    } catch (err) {
      if (i === lines.length - 1) return;
      throw new Error(`journal line ${i + 1} is not JSON`, { cause: err });
    }
    apply(state, record);
  });
  return state;
}

export interface Journal {
  readonly file: string;
  readonly state: JournalState;
  /** Appends a record (synchronously, so a step is on disk before the next one starts). */
  write(record: JournalRecord): void;
}

/**
 * Opens the journal at `file` (empty when there is none yet), first cutting off a last line
 * the process was killed while writing, so that the next record starts a line of its own.
 */
export function openJournal(file: string): Journal {
  let state = emptyState();
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8');
    const end = text.lastIndexOf('\n') + 1;
    if (end < text.length) truncateSync(file, Buffer.byteLength(text.slice(0, end)));
    state = replay(text.slice(0, end));
  }
  return {
    file,
    state,
    write(record) {
      appendFileSync(file, `${JSON.stringify(record)}\n`);
      apply(state, record);
    },
  };
}

/** Whether the journal at `file` says its build finished. */
export function journalDone(file: string): boolean {
  return existsSync(file) && replay(readFileSync(file, 'utf8')).done;
}
