/**
 * Application-service registrations (the YAML files bridges generate): validation of one
 * parsed file, checks across files, and namespace matching. Pure: the caller reads the files.
 * https://spec.matrix.org/v1.19/application-service-api/#registration
 */
import { isValidNewLocalpart } from './identifiers.js';

export interface Namespace {
  exclusive: boolean;
  /** The registration's regex, anchored at both ends. */
  regex: RegExp;
  /** As written in the file. */
  source: string;
}

export interface AppServiceRegistration {
  id: string;
  /** Where transactions and queries go; null: the service only acts, it receives nothing. */
  url: string | null;
  asToken: string;
  hsToken: string;
  senderLocalpart: string;
  namespaces: { users: Namespace[]; aliases: Namespace[]; rooms: Namespace[] };
  rateLimited: boolean;
  protocols: string[];
  /** MSC2409: typing, receipts and presence in transactions. */
  receiveEphemeral: boolean;
  /** MSC3202: to-device messages, device lists and key counts in transactions. */
  msc3202: boolean;
  /** MSC4190: devices created and deleted by the service without interactive auth. */
  msc4190: boolean;
}

export class RegistrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RegistrationError';
  }
}

type Raw = Record<string, unknown>;

const isObject = (value: unknown): value is Raw =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function nonEmptyString(raw: Raw, key: string, where: string): string {
  const value = raw[key];
  if (typeof value !== 'string' || value === '')
    throw new RegistrationError(`${where}: "${key}" must be a non-empty string`);
  return value;
}

function optionalBoolean(raw: Raw, key: string, where: string, fallback: boolean): boolean {
  const value = raw[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean')
    throw new RegistrationError(`${where}: "${key}" must be true or false`);
  return value;
}

function parseNamespaces(raw: unknown, kind: string, where: string): Namespace[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw))
    throw new RegistrationError(`${where}: "namespaces.${kind}" must be a list`);
  return raw.map((entry: unknown, index) => {
    const at = `${where}: namespaces.${kind}[${index}]`;
    if (!isObject(entry)) throw new RegistrationError(`${at} must be a mapping`);
    if (typeof entry.exclusive !== 'boolean')
      throw new RegistrationError(`${at}: "exclusive" must be true or false`);
    if (typeof entry.regex !== 'string' || entry.regex === '')
      throw new RegistrationError(`${at}: "regex" must be a non-empty string`);
    let regex: RegExp;
    try {
      regex = new RegExp(`^(?:${entry.regex})$`);
    } catch (err) {
      throw new RegistrationError(
        `${at}: "regex" ${JSON.stringify(entry.regex)} is not a valid regular expression (${(err as Error).message})`,
      );
    }
    return { exclusive: entry.exclusive, regex, source: entry.regex };
  });
}

/**
 * One registration from its parsed YAML; `where` (the file name) starts every error. Unknown
 * keys are kept out, not refused: the frameworks write keys of their own.
 */
export function parseRegistration(raw: unknown, where: string): AppServiceRegistration {
  if (!isObject(raw)) throw new RegistrationError(`${where}: must hold a mapping of keys`);
  const id = nonEmptyString(raw, 'id', where);
  let url: string | null = null;
  if (raw.url !== undefined && raw.url !== null) {
    if (typeof raw.url !== 'string' || !/^https?:\/\/[^/]/.test(raw.url))
      throw new RegistrationError(`${where}: "url" must be an http(s) URL or null`);
    url = raw.url.replace(/\/+$/, '');
  }
  const asToken = nonEmptyString(raw, 'as_token', where);
  const hsToken = nonEmptyString(raw, 'hs_token', where);
  if (asToken === hsToken)
    throw new RegistrationError(`${where}: "as_token" and "hs_token" must differ`);
  const senderLocalpart = nonEmptyString(raw, 'sender_localpart', where);
  if (!isValidNewLocalpart(senderLocalpart))
    throw new RegistrationError(
      `${where}: "sender_localpart" ${JSON.stringify(senderLocalpart)} is not a valid localpart`,
    );
  const namespaces = raw.namespaces ?? {};
  if (!isObject(namespaces))
    throw new RegistrationError(`${where}: "namespaces" must be a mapping`);
  const protocols = raw.protocols ?? [];
  if (!Array.isArray(protocols) || !protocols.every((p) => typeof p === 'string' && p !== ''))
    throw new RegistrationError(`${where}: "protocols" must be a list of strings`);
  const receiveEphemeral =
    optionalBoolean(raw, 'receive_ephemeral', where, false) ||
    optionalBoolean(raw, 'de.sorunome.msc2409.push_ephemeral', where, false);
  return {
    id,
    url,
    asToken,
    hsToken,
    senderLocalpart,
    namespaces: {
      users: parseNamespaces(namespaces.users, 'users', where),
      aliases: parseNamespaces(namespaces.aliases, 'aliases', where),
      rooms: parseNamespaces(namespaces.rooms, 'rooms', where),
    },
    // Synapse's default: rate limited unless the file says otherwise.
    rateLimited: optionalBoolean(raw, 'rate_limited', where, true),
    protocols: protocols as string[],
    receiveEphemeral,
    msc3202: optionalBoolean(raw, 'org.matrix.msc3202', where, false),
    msc4190: optionalBoolean(raw, 'io.element.msc4190', where, false),
  };
}

/**
 * Refuses registrations that could be confused with each other: the same id, a token used
 * twice (as either kind, in one file or two), the same sender.
 */
export function checkRegistrations(
  entries: readonly { file: string; registration: AppServiceRegistration }[],
): void {
  const ids = new Map<string, string>();
  const tokens = new Map<string, string>();
  const senders = new Map<string, string>();
  for (const { file, registration: r } of entries) {
    const sameId = ids.get(r.id);
    if (sameId !== undefined)
      throw new RegistrationError(`${file}: id "${r.id}" is already used by ${sameId}`);
    ids.set(r.id, file);
    for (const [kind, token] of [
      ['as_token', r.asToken],
      ['hs_token', r.hsToken],
    ] as const) {
      const other = tokens.get(token);
      if (other !== undefined)
        throw new RegistrationError(`${file}: ${kind} is already used by ${other}`);
      tokens.set(token, file);
    }
    const sameSender = senders.get(r.senderLocalpart);
    if (sameSender !== undefined)
      throw new RegistrationError(
        `${file}: sender_localpart "${r.senderLocalpart}" is already used by ${sameSender}`,
      );
    senders.set(r.senderLocalpart, file);
  }
}

const matches = (namespaces: readonly Namespace[], value: string, exclusiveOnly = false) =>
  namespaces.some((ns) => (!exclusiveOnly || ns.exclusive) && ns.regex.test(value));

/** The service's own user: `@<sender_localpart>:<server>`. */
export const senderOf = (r: AppServiceRegistration, serverName: string): string =>
  `@${r.senderLocalpart}:${serverName}`;

/** Whether the service may act as (and is told about) this user. */
export function isServiceUser(
  r: AppServiceRegistration,
  userId: string,
  serverName: string,
): boolean {
  return userId === senderOf(r, serverName) || matches(r.namespaces.users, userId);
}

export const userInExclusiveNamespace = (r: AppServiceRegistration, userId: string): boolean =>
  matches(r.namespaces.users, userId, true);

export const aliasInNamespace = (r: AppServiceRegistration, alias: string, exclusiveOnly = false) =>
  matches(r.namespaces.aliases, alias, exclusiveOnly);

export const roomInNamespace = (r: AppServiceRegistration, roomId: string): boolean =>
  matches(r.namespaces.rooms, roomId);
