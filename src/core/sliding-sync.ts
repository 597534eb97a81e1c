/**
 * Pure parts of simplified sliding sync (MSC4186): the request's shape, connection positions,
 * `required_state` matching with its wildcards and `$ME`/`$LAZY`, list windows and the event
 * types that bump a room. No I/O.
 * https://github.com/matrix-org/matrix-spec-proposals/pull/4186
 */
import { MatrixError } from './errors.js';

/** Event types whose arrival moves a room to the top of a list. */
export const BUMP_EVENT_TYPES: ReadonlySet<string> = new Set([
  'm.room.create',
  'm.room.message',
  'm.room.encrypted',
  'm.sticker',
  'm.call.invite',
  'm.poll.start',
  'm.beacon_info',
]);

export type RequiredState = ReadonlyArray<readonly [string, string]>;

export interface RoomConfig {
  requiredState: RequiredState;
  timelineLimit: number;
}

export interface ListFilters {
  isDm?: boolean | undefined;
  isEncrypted?: boolean | undefined;
  isInvite?: boolean | undefined;
  /** Room types to keep; null stands for rooms without a type. Undefined: no filter. */
  roomTypes?: ReadonlyArray<string | null> | undefined;
  notRoomTypes?: ReadonlyArray<string | null> | undefined;
  spaces?: readonly string[] | undefined;
  tags?: readonly string[] | undefined;
  notTags?: readonly string[] | undefined;
}

export interface ListRequest extends RoomConfig {
  ranges: ReadonlyArray<readonly [number, number]>;
  filters: ListFilters;
}

/** Which rooms an extension covers: named lists and rooms (`*`: every subscribed room). */
export interface ExtensionScope {
  enabled: boolean;
  /** Undefined: all lists. */
  lists?: readonly string[] | undefined;
  /** Undefined: all room subscriptions; `*` among them: the same. */
  rooms?: readonly string[] | undefined;
}

export interface SlidingSyncRequest {
  connId: string;
  txnId?: string | undefined;
  lists: ReadonlyMap<string, ListRequest>;
  roomSubscriptions: ReadonlyMap<string, RoomConfig>;
  extensions: {
    toDevice: { enabled: boolean; since?: string | undefined; limit?: number | undefined };
    e2ee: { enabled: boolean };
    accountData: ExtensionScope;
    receipts: ExtensionScope;
    typing: ExtensionScope;
  };
}

/** The position token of a connection's response: its counter and stream position. */
export function formatPos(counter: number, streamPosition: number): string {
  return `${counter}_${streamPosition}`;
}

export function parsePos(token: string): { counter: number; streamPosition: number } | null {
  const match = /^(\d{1,15})_(\d{1,15})$/.exec(token);
  if (!match) return null;
  return { counter: Number(match[1]), streamPosition: Number(match[2]) };
}

export const unknownPos = (): MatrixError =>
  new MatrixError(400, 'M_UNKNOWN_POS', 'Unknown position: start a new connection (no pos)');

/** The required state of several configs at once (a room in two lists gets both). */
export function mergeConfigs(configs: readonly RoomConfig[]): RoomConfig {
  const seen = new Set<string>();
  const requiredState: (readonly [string, string])[] = [];
  for (const config of configs)
    for (const entry of config.requiredState) {
      const key = `${entry[0]}\u0000${entry[1]}`;
      if (seen.has(key)) continue;
      seen.add(key);
      requiredState.push(entry);
    }
  return {
    requiredState,
    timelineLimit: Math.max(0, ...configs.map((c) => c.timelineLimit)),
  };
}

/** What `required_state` asks of a room's state, resolved for the user and the timeline. */
export interface StateSelection {
  /** Every state event (`["*", "*"]`). */
  all: boolean;
  /** Every event of these types (`[type, "*"]`). */
  types: ReadonlySet<string>;
  /** This state key of any type (`["*", key]`). */
  stateKeys: ReadonlySet<string>;
  /** Exact (type, state key) pairs, `$ME` resolved. */
  keys: ReadonlyArray<readonly [string, string]>;
  /** `["m.room.member", "$LAZY"]`: the members of the timeline's senders. */
  lazyMembers: boolean;
}

export function selectState(requiredState: RequiredState, userId: string): StateSelection {
  let all = false;
  let lazyMembers = false;
  const types = new Set<string>();
  const stateKeys = new Set<string>();
  const keys: (readonly [string, string])[] = [];
  for (const [type, rawKey] of requiredState) {
    const stateKey = rawKey === '$ME' ? userId : rawKey;
    if (type === '*' && stateKey === '*') all = true;
    else if (type === 'm.room.member' && stateKey === '$LAZY') lazyMembers = true;
    else if (stateKey === '*') types.add(type);
    else if (type === '*') stateKeys.add(stateKey);
    else keys.push([type, stateKey]);
  }
  return { all, types, stateKeys, keys, lazyMembers };
}

/** Whether a state event (type, state key) is one the selection asks for (lazy members aside). */
export function stateSelected(selection: StateSelection, type: string, stateKey: string): boolean {
  if (selection.all || selection.types.has(type) || selection.stateKeys.has(stateKey)) return true;
  return selection.keys.some(([t, k]) => t === type && k === stateKey);
}

/**
 * Whether the selection asks for every member's event (not lazily): a list a room joined with
 * partial state cannot give until its members are all in.
 */
export const asksEveryMember = (selection: StateSelection): boolean =>
  selection.all || selection.types.has('m.room.member');

/** Whether the selection needs more than exact keys (a read of the room's whole state). */
export const needsWholeState = (selection: StateSelection): boolean =>
  selection.all || selection.types.size > 0 || selection.stateKeys.size > 0;

/**
 * The spans of a sorted list of `length` items that its ranges cover (inclusive ranges), clipped
 * to the list, overlapping and adjacent ones merged, in order: each is read with one statement.
 */
export function spansOfRanges(
  ranges: ReadonlyArray<readonly [number, number]>,
  length: number,
): [number, number][] {
  const clipped = ranges
    .map(([start, end]) => [Math.max(0, start), Math.min(end, length - 1)] as [number, number])
    .filter(([start, end]) => start <= end)
    .sort((a, b) => a[0] - b[0]);
  const spans: [number, number][] = [];
  for (const [start, end] of clipped) {
    const last = spans.at(-1);
    if (last && start <= last[1] + 1) last[1] = Math.max(last[1], end);
    else spans.push([start, end]);
  }
  return spans;
}
