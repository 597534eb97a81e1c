/**
 * The room versions Commons supports and the properties of each that the rest of the code
 * branches on. https://spec.matrix.org/v1.19/rooms/
 */
import type { RoomVersionId } from './pdu.js';

export type RoomVersionStability = 'stable' | 'unstable';

export interface RoomVersion {
  readonly id: RoomVersionId;
  readonly stability: RoomVersionStability;
  /** Which redaction algorithm applies: rooms v9/v10 rules, or the v11 rules (also v12). */
  readonly redactionRules: 'v9' | 'v11';
  /** `m.room.redaction` carries `redacts` in `content` (v11+) rather than at the top level. */
  readonly redactsInContent: boolean;
  /** `m.room.create` content has a `creator` property (removed in v11). */
  readonly createContentHasCreator: boolean;
  /** The create event has a `room_id` (false from v12: the room ID is derived from it). */
  readonly createEventHasRoomId: boolean;
  /** The room ID is `!` + the reference hash of the create event (v12). */
  readonly roomIdFromCreateEvent: boolean;
  /** The create event is listed in every event's `auth_events` (not in v12, where `room_id` implies it). */
  readonly createEventInAuthEvents: boolean;
  /** Room creators have infinite power level and cannot appear in `m.room.power_levels` users (v12). */
  readonly creatorsHavePower: boolean;
  /** The create event may name `additional_creators` in its content (v12). */
  readonly additionalCreators: boolean;
  /** State resolution algorithm: v2, or v2.1 as amended by room version 12. */
  readonly stateResolution: 'v2' | 'v2.1';
}

const V10: RoomVersion = Object.freeze({
  id: '10',
  stability: 'stable',
  redactionRules: 'v9',
  redactsInContent: false,
  createContentHasCreator: true,
  createEventHasRoomId: true,
  roomIdFromCreateEvent: false,
  createEventInAuthEvents: true,
  creatorsHavePower: false,
  additionalCreators: false,
  stateResolution: 'v2',
});

const V11: RoomVersion = Object.freeze({
  ...V10,
  id: '11',
  redactionRules: 'v11',
  redactsInContent: true,
  createContentHasCreator: false,
});

const V12: RoomVersion = Object.freeze({
  ...V11,
  id: '12',
  createEventHasRoomId: false,
  roomIdFromCreateEvent: true,
  createEventInAuthEvents: false,
  creatorsHavePower: true,
  additionalCreators: true,
  stateResolution: 'v2.1',
});

/** Every supported room version, by ID. */
export const ROOM_VERSIONS: Readonly<Record<RoomVersionId, RoomVersion>> = Object.freeze({
  '10': V10,
  '11': V11,
  '12': V12,
});

/**
 * The version of rooms created without an explicit `room_version`, unless configured
 * otherwise (`rooms.default_version`): the spec's suggested default (MSC3904).
 */
export const DEFAULT_ROOM_VERSION: RoomVersionId = '10';

/** Whether a value names a room version this server supports. */
export function isSupportedRoomVersion(id: unknown): id is RoomVersionId {
  return typeof id === 'string' && Object.hasOwn(ROOM_VERSIONS, id);
}

/** The properties of a supported room version. */
export function getRoomVersion(id: RoomVersionId): RoomVersion {
  return ROOM_VERSIONS[id];
}

/** The `available` map of the `m.room_versions` capability. */
export function availableRoomVersions(): Record<string, RoomVersionStability> {
  const available: Record<string, RoomVersionStability> = {};
  for (const version of Object.values(ROOM_VERSIONS)) available[version.id] = version.stability;
  return available;
}
