/**
 * The Filter object of /sync and POST /user/{userId}/filter: parsed and checked once, with
 * the spec's defaults, and `event_fields` projection.
 * https://spec.matrix.org/v1.19/client-server-api/#filtering
 */
import type { JsonObject } from './pdu.js';

export interface EventFilter {
  limit?: number;
  types?: string[];
  not_types?: string[];
  senders?: string[];
  not_senders?: string[];
}

export interface RoomEventFilter extends EventFilter {
  rooms?: string[];
  not_rooms?: string[];
  lazy_load_members?: boolean;
  include_redundant_members?: boolean;
  contains_url?: boolean;
  unread_thread_notifications?: boolean;
}

export interface RoomFilter {
  rooms?: string[];
  not_rooms?: string[];
  include_leave?: boolean;
  timeline?: RoomEventFilter;
  state?: RoomEventFilter;
  ephemeral?: RoomEventFilter;
  account_data?: RoomEventFilter;
}

export interface SyncFilter {
  event_fields?: string[];
  event_format?: 'client' | 'federation';
  presence?: EventFilter;
  account_data?: EventFilter;
  room?: RoomFilter;
}

/** Why a filter was refused, naming the offending field. */
export class FilterError extends Error {}

const MAX_LIST = 1000;

type Raw = Record<string, unknown>;

function objectAt(value: unknown, where: string): Raw | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new FilterError(`${where} must be an object`);
  return value as Raw;
}

function stringsAt(value: unknown, where: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (
    !Array.isArray(value) ||
    value.length > MAX_LIST ||
    !value.every((v): v is string => typeof v === 'string')
  )
    throw new FilterError(`${where} must be an array of at most ${MAX_LIST} strings`);
  // Nothing is named with NUL (and PostgreSQL cannot store it): such an entry matches nothing.
  return value.filter((v) => !v.includes('\u0000'));
}

function booleanAt(value: unknown, where: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw new FilterError(`${where} must be a boolean`);
  return value;
}

function parseEventFilter(value: unknown, where: string): EventFilter | undefined {
  const raw = objectAt(value, where);
  if (!raw) return undefined;
  const filter: EventFilter = {};
  if (raw.limit !== undefined) {
    if (typeof raw.limit !== 'number' || !Number.isInteger(raw.limit) || raw.limit < 0)
      throw new FilterError(`${where}.limit must be a non-negative integer`);
    filter.limit = raw.limit;
  }
  for (const key of ['types', 'not_types', 'senders', 'not_senders'] as const) {
    const list = stringsAt(raw[key], `${where}.${key}`);
    if (list) filter[key] = list;
  }
  return filter;
}

function parseRoomEventFilter(value: unknown, where: string): RoomEventFilter | undefined {
  const base = parseEventFilter(value, where);
  if (!base) return undefined;
  const raw = value as Raw;
  const filter: RoomEventFilter = { ...base };
  for (const key of ['rooms', 'not_rooms'] as const) {
    const list = stringsAt(raw[key], `${where}.${key}`);
    if (list) filter[key] = list;
  }
  for (const key of [
    'lazy_load_members',
    'include_redundant_members',
    'contains_url',
    'unread_thread_notifications',
  ] as const) {
    const flag = booleanAt(raw[key], `${where}.${key}`);
    if (flag !== undefined) filter[key] = flag;
  }
  return filter;
}

/** Checks a filter definition; throws FilterError naming the first bad field. */
export function parseSyncFilter(value: unknown): SyncFilter {
  const raw = objectAt(value, 'filter');
  if (!raw) throw new FilterError('filter must be an object');
  const filter: SyncFilter = {};
  const fields = stringsAt(raw.event_fields, 'event_fields');
  if (fields) filter.event_fields = fields;
  if (raw.event_format !== undefined) {
    if (raw.event_format !== 'client' && raw.event_format !== 'federation')
      throw new FilterError('event_format must be "client" or "federation"');
    filter.event_format = raw.event_format;
  }
  const presence = parseEventFilter(raw.presence, 'presence');
  if (presence) filter.presence = presence;
  const accountData = parseEventFilter(raw.account_data, 'account_data');
  if (accountData) filter.account_data = accountData;
  const room = objectAt(raw.room, 'room');
  if (room) {
    const parsed: RoomFilter = {};
    for (const key of ['rooms', 'not_rooms'] as const) {
      const list = stringsAt(room[key], `room.${key}`);
      if (list) parsed[key] = list;
    }
    const includeLeave = booleanAt(room.include_leave, 'room.include_leave');
    if (includeLeave !== undefined) parsed.include_leave = includeLeave;
    for (const key of ['timeline', 'state', 'ephemeral', 'account_data'] as const) {
      const part = parseRoomEventFilter(room[key], `room.${key}`);
      if (part) parsed[key] = part;
    }
    filter.room = parsed;
  }
  return filter;
}

const typeMatches = (pattern: string, type: string): boolean =>
  pattern.endsWith('*') ? type.startsWith(pattern.slice(0, -1)) : pattern === type;

/** Whether an event of `type` from `sender` passes the filter's type and sender lists. */
export function passesEventFilter(
  filter: EventFilter | undefined,
  type: string,
  sender: string | undefined,
): boolean {
  if (!filter) return true;
  if (filter.not_types?.some((p) => typeMatches(p, type))) return false;
  if (filter.types && !filter.types.some((p) => typeMatches(p, type))) return false;
  if (sender !== undefined) {
    if (filter.not_senders?.includes(sender)) return false;
    if (filter.senders && !filter.senders.includes(sender)) return false;
  }
  return true;
}

/** Whether a room passes `rooms`/`not_rooms`. */
export function passesRoomLists(
  filter: { rooms?: string[]; not_rooms?: string[] } | undefined,
  roomId: string,
): boolean {
  if (!filter) return true;
  if (filter.not_rooms?.includes(roomId)) return false;
  if (filter.rooms && !filter.rooms.includes(roomId)) return false;
  return true;
}

/** Splits an event_fields entry on unescaped dots (`\.` is a literal dot, `\\` a backslash). */
function fieldPath(field: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < field.length; i++) {
    const ch = field[i] as string;
    if (ch === '\\' && (field[i + 1] === '.' || field[i + 1] === '\\')) {
      current += field[i + 1];
      i++;
    } else if (ch === '.') {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

/** Keeps only the listed fields of an event (the spec's `event_fields`); others are dropped. */
export function projectEventFields<T extends object>(event: T, fields: readonly string[]): T {
  const out: JsonObject = {};
  for (const field of fields) {
    const path = fieldPath(field);
    let source: unknown = event;
    let target: JsonObject = out;
    for (let i = 0; i < path.length; i++) {
      const key = path[i] as string;
      if (typeof source !== 'object' || source === null || Array.isArray(source)) break;
      const value = (source as Record<string, unknown>)[key];
      if (value === undefined) break;
      if (i === path.length - 1) {
        target[key] = value as JsonObject[string];
      } else {
        const next = target[key];
        if (typeof next !== 'object' || next === null || Array.isArray(next)) target[key] = {};
        target = target[key] as JsonObject;
        source = value;
      }
    }
  }
  return out as T;
}
