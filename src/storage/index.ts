/**
 * The storage facade services see: the stores, bound either to the database or to one
 * named transaction. SQL lives in the stores and nowhere else.
 */
import type { Kysely } from 'kysely';
import { accountStore, type AccountStore } from './account-store.js';
import { deviceStore, type DeviceStore } from './device-store.js';
import { uiaStore, type UiaStore } from './uia-store.js';
import { roomStore, type RoomStore } from './room-store.js';
import { directoryStore, type DirectoryStore } from './directory-store.js';
import { mutualRoomsStore, type MutualRoomsStore } from './mutual-rooms-store.js';
import { memberListStore, type MemberListStore } from './member-list-store.js';
import { secretStore, type SecretStore } from './secret-store.js';
import type { Database } from './schema.js';
import { openDatabase, type DialectName, type OpenOptions } from './database.js';

export interface Stores {
  readonly accounts: AccountStore;
  readonly devices: DeviceStore;
  readonly uia: UiaStore;
  readonly rooms: RoomStore;
  readonly directory: DirectoryStore;
  readonly mutualRooms: MutualRoomsStore;
  readonly memberLists: MemberListStore;
  readonly secrets: SecretStore;
}

export interface Storage {
  readonly dialect: DialectName;
  /** Stores on the database, outside any transaction (single statements). */
  readonly stores: Stores;
  /** Runs `fn` with stores bound to one transaction named `name`. */
  tx<T>(name: string, fn: (stores: Stores) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export function storesFor(db: Kysely<Database>, dialect: DialectName): Stores {
  return {
    accounts: accountStore(db),
    devices: deviceStore(db),
    uia: uiaStore(db),
    rooms: roomStore(db, dialect),
    directory: directoryStore(db, dialect),
    mutualRooms: mutualRoomsStore(db, dialect),
    memberLists: memberListStore(db),
    secrets: secretStore(db),
  };
}

export async function openStorage(url: string, options: OpenOptions = {}): Promise<Storage> {
  const handle = await openDatabase(url, options);
  return {
    dialect: handle.dialect,
    stores: storesFor(handle.db, handle.dialect),
    tx: (name, fn) => handle.tx(name, (trx) => fn(storesFor(trx, handle.dialect))),
    close: () => handle.close(),
  };
}

export type {
  AccountStore,
  DeviceStore,
  UiaStore,
  RoomStore,
  DirectoryStore,
  MutualRoomsStore,
  MemberListStore,
  SecretStore,
};
export type { MutualRoomPair, MutualRoomEntry } from './mutual-rooms-store.js';
export type {
  MemberRow,
  MembershipSelector,
  JoinedProfileRow,
  UserRoomRow,
} from './member-list-store.js';
export type { AliasRow, PublicRoomRow, PublicRoomsFilter } from './directory-store.js';
export type { RoomRow, EventRow, EventToPersist, MembershipChange } from './room-store.js';
export type { UserRow, ProfileRow, NewUser } from './account-store.js';
export type { DeviceRow, TokenOwner } from './device-store.js';
