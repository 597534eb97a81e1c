/**
 * Parses the `filter` query parameter: a RoomEventFilter as JSON (/messages, /context,
 * /state, /members), with MSC2895's `membership` and the room lists of its room listing.
 */
import { invalidParam } from '../../core/errors.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../../core/json-depth.js';
import { MEMBERSHIPS } from '../../services/member-lists.js';
import type { RoomEventFilter } from '../../services/timeline.js';

const isStringArray = (value: unknown): value is string[] =>
  Array.isArray(value) && value.length <= 1000 && value.every((v) => typeof v === 'string');

/**
 * No identifier or type holds NUL (and PostgreSQL cannot store it in text): such an entry
 * names nothing, so it is dropped, which keeps the meaning of both allow and deny lists.
 */
const withoutNul = (values: string[]): string[] => values.filter((v) => !v.includes('\u0000'));

export function parseRoomEventFilter(raw: string | undefined): RoomEventFilter | undefined {
  if (raw === undefined || raw === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw invalidParam('filter is not valid JSON');
  }
  if (nestsDeeperThan(parsed))
    throw invalidParam(`filter may not nest more than ${MAX_JSON_DEPTH} levels deep`);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw invalidParam('filter must be a JSON object');
  const object = parsed as Record<string, unknown>;
  const filter: RoomEventFilter = {};
  for (const key of [
    'types',
    'not_types',
    'senders',
    'not_senders',
    'rooms',
    'not_rooms',
    'related_by_rel_types',
    'related_by_senders',
  ] as const) {
    const value = object[key];
    if (value === undefined) continue;
    if (!isStringArray(value)) throw invalidParam(`filter.${key} must be an array of strings`);
    filter[key] = withoutNul(value);
  }
  if (object.limit !== undefined) {
    if (typeof object.limit !== 'number' || !Number.isInteger(object.limit) || object.limit < 1) {
      throw invalidParam('filter.limit must be a positive integer');
    }
    filter.limit = object.limit;
  }
  if (object.membership !== undefined) {
    const value = object.membership;
    if (
      !isStringArray(value) ||
      !value.every((m) => (MEMBERSHIPS as readonly string[]).includes(m))
    )
      throw invalidParam(`filter.membership must be an array of ${MEMBERSHIPS.join(', ')}`);
    filter.membership = value;
  }
  if (object.lazy_load_members !== undefined) {
    if (typeof object.lazy_load_members !== 'boolean')
      throw invalidParam('filter.lazy_load_members must be a boolean');
    filter.lazy_load_members = object.lazy_load_members;
  }
  return filter;
}
