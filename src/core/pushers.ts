/**
 * Pushers, the protocol part: checking a `/pushers/set` body, and the body of a Push Gateway
 * `POST /_matrix/push/v1/notify` for one event and one pusher.
 * https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3pushersset
 * https://spec.matrix.org/v1.19/push-gateway-api/#post_matrixpushv1notify
 */
import { invalidParam, missingParam } from './errors.js';
import type { JsonObject } from './pdu.js';

/** The path every HTTP pusher's `data.url` must have (spec). */
export const NOTIFY_PATH = '/_matrix/push/v1/notify';
const MAX_APP_ID = 64;
const MAX_PUSHKEY_BYTES = 512;
const MAX_TEXT = 512;
const MAX_DATA_BYTES = 4096;

export interface PusherSettings {
  kind: 'http';
  appId: string;
  pushkey: string;
  appDisplayName: string;
  deviceDisplayName: string;
  profileTag: string | null;
  lang: string;
  data: JsonObject;
  append: boolean;
}

export type PusherRequest = { kind: null; appId: string; pushkey: string } | PusherSettings;

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function requiredString(body: JsonObject, key: string, max: number): string {
  const value = body[key];
  if (value === undefined) throw missingParam(`Missing ${key}`);
  if (typeof value !== 'string' || value.length === 0 || value.length > max)
    throw invalidParam(`${key} must be a string of 1 to ${max} characters`);
  return value;
}

/** Checks a `POST /pushers/set` body: errors are the spec's 400s. */
export function parsePusherRequest(body: unknown): PusherRequest {
  if (!isObject(body)) throw invalidParam('The body must be a JSON object');
  if (!('kind' in body)) throw missingParam('Missing kind');
  const kind = body.kind;
  const appId = requiredString(body, 'app_id', MAX_APP_ID);
  const pushkey = requiredString(body, 'pushkey', MAX_PUSHKEY_BYTES);
  if (new TextEncoder().encode(pushkey).length > MAX_PUSHKEY_BYTES)
    throw invalidParam(`pushkey must be at most ${MAX_PUSHKEY_BYTES} bytes`);
  if (kind === null) return { kind: null, appId, pushkey };
  if (typeof kind !== 'string') throw invalidParam('kind must be a string or null');
  if (kind !== 'http') throw invalidParam(`Unsupported pusher kind: ${kind.slice(0, 64)}`);
  const appDisplayName = requiredString(body, 'app_display_name', MAX_TEXT);
  const deviceDisplayName = requiredString(body, 'device_display_name', MAX_TEXT);
  const lang = requiredString(body, 'lang', MAX_TEXT);
  let profileTag: string | null = null;
  if (body.profile_tag !== undefined && body.profile_tag !== null) {
    if (typeof body.profile_tag !== 'string' || body.profile_tag.length > MAX_TEXT)
      throw invalidParam(`profile_tag must be a string of at most ${MAX_TEXT} characters`);
    profileTag = body.profile_tag;
  }
  const append = body.append ?? false;
  if (typeof append !== 'boolean') throw invalidParam('append must be a boolean');
  const data = body.data;
  if (data === undefined) throw missingParam('Missing data');
  if (!isObject(data)) throw invalidParam('data must be an object');
  if (new TextEncoder().encode(JSON.stringify(data)).length > MAX_DATA_BYTES)
    throw invalidParam(`data must be at most ${MAX_DATA_BYTES} bytes as JSON`);
  if (data.url === undefined) throw missingParam("Missing data.url: an 'http' pusher needs it");
  if (typeof data.url !== 'string') throw invalidParam('data.url must be a string');
  let url: URL;
  try {
    url = new URL(data.url);
  } catch {
    throw invalidParam('data.url must be an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw invalidParam('data.url must be an https (or http) URL');
  if (url.pathname !== NOTIFY_PATH)
    throw invalidParam(`data.url must have the path ${NOTIFY_PATH}`);
  if (url.username !== '' || url.password !== '')
    throw invalidParam('data.url must not carry credentials');
  if (data.format !== undefined && data.format !== 'event_id_only')
    throw invalidParam("data.format must be 'event_id_only' when given");
  return {
    kind,
    appId,
    pushkey,
    appDisplayName,
    deviceDisplayName,
    profileTag,
    lang,
    data,
    append,
  };
}

/** The tweaks the matched rule's actions set (`set_tweak`; `highlight` without a value is true). */
export function tweaksOf(actions: readonly unknown[]): JsonObject {
  const tweaks: JsonObject = {};
  for (const action of actions) {
    if (!isObject(action) || typeof action.set_tweak !== 'string') continue;
    tweaks[action.set_tweak] =
      action.value === undefined ? (action.set_tweak === 'highlight' ? true : null) : action.value;
  }
  return tweaks;
}

/** What a notification is about: the event and what the gateway may show of the room. */
export interface NotifiedEvent {
  eventId: string;
  roomId: string;
  type: string;
  sender: string;
  stateKey?: string | undefined;
  content: JsonObject;
  senderDisplayName?: string | undefined;
  roomName?: string | undefined;
  roomAlias?: string | undefined;
}

export interface NotifiedDevice {
  appId: string;
  pushkey: string;
  /** When the pushkey was set, in ms (sent in seconds). */
  pushkeyTs: number;
  /** The pusher's `data` (its `url` is left out of the body). */
  data: JsonObject;
}

/**
 * The `/notify` body for an event, one device, the user's counts and the rule's actions.
 * `event_id_only` pushers get the event's and room's IDs, counts, priority and the device;
 * others the event's type, sender, content and the room's name and alias besides. The
 * priority is high for what sounds or highlights, and for encrypted events (whose rules the
 * server cannot see); low otherwise.
 */
export function notifyBody(
  event: NotifiedEvent,
  userId: string,
  device: NotifiedDevice,
  counts: { unread: number; missedCalls?: number },
  actions: readonly unknown[],
): { notification: JsonObject } {
  const tweaks = tweaksOf(actions);
  const high =
    event.type === 'm.room.encrypted' ||
    (tweaks.highlight !== undefined && tweaks.highlight !== false) ||
    tweaks.sound !== undefined;
  const data: JsonObject = { ...device.data };
  delete data.url;
  const countsJson: JsonObject = {};
  if (counts.unread > 0) countsJson.unread = counts.unread;
  if ((counts.missedCalls ?? 0) > 0) countsJson.missed_calls = counts.missedCalls ?? 0;
  const devices = [
    {
      app_id: device.appId,
      pushkey: device.pushkey,
      pushkey_ts: Math.floor(device.pushkeyTs / 1000),
      data,
      tweaks,
    },
  ];
  const prio = high ? 'high' : 'low';
  if (device.data.format === 'event_id_only')
    return {
      notification: {
        event_id: event.eventId,
        room_id: event.roomId,
        counts: countsJson,
        prio,
        devices,
      },
    };
  const notification: JsonObject = {
    event_id: event.eventId,
    room_id: event.roomId,
    type: event.type,
    sender: event.sender,
    prio,
    counts: countsJson,
    devices,
  };
  if (event.senderDisplayName !== undefined)
    notification.sender_display_name = event.senderDisplayName;
  if (event.roomName !== undefined) notification.room_name = event.roomName;
  if (event.roomAlias !== undefined) notification.room_alias = event.roomAlias;
  if (event.type === 'm.room.member' && event.stateKey !== undefined)
    notification.user_is_target = event.stateKey === userId;
  if (Object.keys(event.content).length > 0) notification.content = event.content;
  return { notification };
}
