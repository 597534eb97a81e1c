/**
 * Account data: what clients keep for their user, globally or per room, delivered by /sync.
 * Every write takes a position of the global stream, so /sync finds it by position.
 */
import { MatrixError, forbidden, notFound } from '../core/errors.js';
import type { JsonObject } from '../core/pdu.js';
import {
  defaultPushRules,
  PUSH_RULES_TYPE,
  rulesetContent,
  rulesetFromContent,
} from '../core/push-rules.js';
import type { Requester, ServiceContext } from './context.js';

/** The room ID of global account data in the store. */
const GLOBAL = '';

/**
 * Types the server manages: clients read them as any other, and change them through their
 * own APIs (read markers, push rules), never through the account data API.
 */
const SERVER_MANAGED_TYPES = new Set(['m.fully_read', PUSH_RULES_TYPE]);

export interface AccountDataEntry {
  type: string;
  content: JsonObject;
}

export interface AccountDataChanges {
  global: AccountDataEntry[];
  rooms: Map<string, AccountDataEntry[]>;
}

export function createAccountDataService(ctx: ServiceContext) {
  const { accountData } = ctx.storage.stores;

  function ownOnly(requester: Requester, userId: string): void {
    if (requester.userId !== userId)
      throw forbidden('You cannot access the account data of another user');
  }

  function writableByClients(type: string): void {
    if (SERVER_MANAGED_TYPES.has(type))
      throw new MatrixError(405, 'M_BAD_JSON', `Cannot set ${type} through this API`);
  }

  /** Stored content as clients see it: push rules always with the current default rules. */
  function present(userId: string, roomId: string, type: string, text: string): JsonObject {
    const content = JSON.parse(text) as JsonObject;
    return roomId === GLOBAL && type === PUSH_RULES_TYPE
      ? rulesetContent(rulesetFromContent(content, userId))
      : content;
  }

  async function read(userId: string, roomId: string, type: string): Promise<JsonObject | null> {
    const text = await accountData.selectAccountData(userId, roomId, type);
    if (text !== undefined) return present(userId, roomId, type, text);
    if (roomId === GLOBAL && type === PUSH_RULES_TYPE)
      return rulesetContent(defaultPushRules(userId));
    return null;
  }

  async function write(
    name: string,
    userId: string,
    roomId: string,
    type: string,
    content: JsonObject,
  ): Promise<void> {
    await ctx.storage.tx(name, async (stores) => {
      const position = await stores.stream.nextPosition();
      await stores.accountData.upsertAccountData(
        userId,
        roomId,
        type,
        JSON.stringify(content),
        position,
      );
      await stores.stream.notify({ users: [userId] });
    });
  }

  return {
    async getGlobal(requester: Requester, userId: string, type: string): Promise<JsonObject> {
      ownOnly(requester, userId);
      const content = await read(userId, GLOBAL, type);
      if (!content) throw notFound('Account data not found');
      return content;
    },

    async getRoom(
      requester: Requester,
      userId: string,
      roomId: string,
      type: string,
    ): Promise<JsonObject> {
      ownOnly(requester, userId);
      const content = await read(userId, roomId, type);
      if (!content) throw notFound('Room account data not found');
      return content;
    },

    async putGlobal(
      requester: Requester,
      userId: string,
      type: string,
      content: JsonObject,
    ): Promise<void> {
      ownOnly(requester, userId);
      writableByClients(type);
      await write('putGlobalAccountData', userId, GLOBAL, type, content);
    },

    async putRoom(
      requester: Requester,
      userId: string,
      roomId: string,
      type: string,
      content: JsonObject,
    ): Promise<void> {
      ownOnly(requester, userId);
      writableByClients(type);
      await write('putRoomAccountData', userId, roomId, type, content);
    },

    /** Sets room account data (used by read markers too). */
    async setRoom(
      userId: string,
      roomId: string,
      type: string,
      content: JsonObject,
    ): Promise<void> {
      await write('setRoomAccountData', userId, roomId, type, content);
    },

    async setGlobal(userId: string, type: string, content: JsonObject): Promise<void> {
      await write('setGlobalAccountData', userId, GLOBAL, type, content);
    },

    /** One global entry as stored (undefined when never set), for the services that own it. */
    async readGlobal(userId: string, type: string): Promise<JsonObject | undefined> {
      const text = await accountData.selectAccountData(userId, GLOBAL, type);
      return text === undefined ? undefined : (JSON.parse(text) as JsonObject);
    },

    /**
     * Reads one global entry, changes it and writes it back in the transaction `name`.
     * The stream position is taken first: it holds the stream counter until commit, so two
     * changes of the same entry never interleave. `change` may throw to change nothing.
     */
    async updateGlobal(
      name: string,
      userId: string,
      type: string,
      change: (current: JsonObject | undefined) => JsonObject,
    ): Promise<void> {
      await ctx.storage.tx(name, async (stores) => {
        const position = await stores.stream.nextPosition();
        const text = await stores.accountData.selectAccountData(userId, GLOBAL, type);
        const next = change(text === undefined ? undefined : (JSON.parse(text) as JsonObject));
        await stores.accountData.upsertAccountData(
          userId,
          GLOBAL,
          type,
          JSON.stringify(next),
          position,
        );
        await stores.stream.notify({ users: [userId] });
      });
    },

    /**
     * Account data changed in (after, upTo]; after = 0 means everything (initial sync). On
     * an initial sync the global list includes m.push_rules with the default rules when the
     * user has never changed them.
     */
    async changesSince(userId: string, after: number, upTo: number): Promise<AccountDataChanges> {
      const rows = await accountData.selectAccountDataChanges(userId, after, upTo);
      const global: AccountDataEntry[] = [];
      const rooms = new Map<string, AccountDataEntry[]>();
      for (const row of rows) {
        const entry = {
          type: row.type,
          content: present(userId, row.roomId, row.type, row.content),
        };
        if (row.roomId === GLOBAL) {
          global.push(entry);
        } else {
          const list = rooms.get(row.roomId);
          if (list) list.push(entry);
          else rooms.set(row.roomId, [entry]);
        }
      }
      if (after === 0 && !global.some((entry) => entry.type === PUSH_RULES_TYPE))
        global.push({ type: PUSH_RULES_TYPE, content: rulesetContent(defaultPushRules(userId)) });
      return { global, rooms };
    },
  };
}

export type AccountDataService = ReturnType<typeof createAccountDataService>;
