/** Builds every service from one context; route modules receive this object. */
import { createAccountService } from './accounts.js';
import type { ServiceContext } from './context.js';
import { createDeviceService } from './devices.js';
import { createProfileService } from './profiles.js';
import { createSessionService } from './sessions.js';
import { createUiaService } from './uia.js';
import { createEventWriter } from './event-writer.js';
import { createRoomService } from './rooms.js';
import { createMembershipService } from './membership.js';
import { createRoomEventService } from './room-events.js';
import { createDirectoryService } from './directory.js';
import { createTimelineService } from './timeline.js';
import { createMutualRoomsService } from './mutual-rooms.js';
import { createMemberListService } from './member-lists.js';
import { createNotifier } from './notifier.js';
import { createFilterService } from './filters.js';
import { createSyncService } from './sync.js';
import type { SyncSources } from './sync-sources.js';
import { createAccountDataService } from './account-data.js';
import { createPushRuleService } from './push-rules.js';
import { createPresenceService } from './presence.js';
import { createPresenceTimeouts } from './presence-timeouts.js';
import { createTypingService } from './typing.js';
import { createReceiptService } from './receipts.js';
import { createDeviceKeyService } from './device-keys.js';
import { createToDeviceService } from './to-device.js';
import { createDeactivationService } from './deactivation.js';
import { createHealthService } from './health.js';
import { createFederationService } from './federation/index.js';
import { createAppServices } from './appservice/index.js';

import { createMediaService } from './media/index.js';
import { createKeyBackupService } from './key-backup.js';
import { createCrossSigningService } from './cross-signing.js';
import { createUserDirectoryService } from './user-directory.js';
import { createDirectoryReachWorker } from './user-directory-reach.js';
import { createRelationAggregator, createRelationService } from './relations.js';
import { createSearchService } from './search.js';
import { createNotificationService } from './push/notifications.js';
import { createPusherService } from './push/pushers.js';
import { createPushSender } from './push/sender.js';
import { createPushEvaluationWorker } from './push/evaluation.js';
import { createAdminServices } from './admin/index.js';
import { createSlidingSyncService } from './sliding-sync/index.js';
import { deriveRoomListMeta, deriveRoomListMetaState } from './sliding-sync/room-list-meta.js';
import { createRoomSummaryService } from './room-summary.js';
import { createDehydratedDeviceService } from './dehydrated-devices.js';
import { createFederationDeviceService } from './federation/devices.js';
import { createEduReceiver } from './federation/edus.js';
import { createRoomDagService } from './rooms-dag/index.js';

export function createServices(ctx: ServiceContext) {
  const uia = createUiaService(ctx);
  const accounts = createAccountService(ctx, uia);
  const writer = createEventWriter(ctx);
  const roomDag = createRoomDagService(ctx, writer);
  const rooms = createRoomService(ctx, writer);
  // Invites of other servers' users go through their servers (federation, built below).
  const membership = createMembershipService(ctx, writer, rooms, () => federation);
  const aggregator = createRelationAggregator(ctx);
  // Relations and search index backfilled history too (`history`); nothing else does.
  writer.addDeriver(aggregator.deriver, { history: true });
  const timeline = createTimelineService(
    ctx,
    writer,
    aggregator,
    () => federation?.backfill ?? null,
  );
  const search = createSearchService(ctx, timeline);
  writer.addDeriver(search.deriver, { history: true });
  const notifications = createNotificationService(ctx, timeline);
  writer.addDeriver(notifications.deriver);
  const pushSender = createPushSender(ctx, notifications.totalUnread);
  const notifier = createNotifier(ctx.storage);
  const accountData = createAccountDataService(ctx);
  const presence = createPresenceService(ctx);
  const typing = createTypingService(ctx);
  const receipts = createReceiptService(ctx, accountData);
  const deviceKeys = createDeviceKeyService(ctx);
  const toDevice = createToDeviceService(ctx);
  // What /sync gathers besides room events.
  const userDirectory = createUserDirectoryService(ctx, {
    searchAll: ctx.settings.userDirectorySearchAll ?? false,
  });
  writer.addDeriver(userDirectory.deriver);
  writer.addStateDeriver(userDirectory.stateDeriver);
  const profiles = createProfileService(ctx, membership);
  const directory = createDirectoryService(ctx);
  // Federation (when enabled): new events are queued for other servers in their transaction.
  const federation = ctx.settings.federation
    ? createFederationService(ctx, ctx.settings.federation, {
        profile: (userId) => profiles.get(userId),
        resolveAlias: (alias) => directory.resolveAlias(alias),
        roomDag,
      })
    : null;
  if (federation) writer.addDeriver(federation.deriver);
  // Holes in rooms' histories, backfilled when /messages reaches them.
  if (federation) writer.addDeriver(federation.backfill.deriver);
  const appservices = createAppServices(ctx, accounts, writer);
  const sources: SyncSources = {
    accountData,
    presence,
    receipts,
    typing,
    toDevice,
    deviceKeys,
    unread: notifications,
  };
  const deactivation = createDeactivationService(
    ctx,
    uia,
    accounts,
    writer,
    rooms,
    membership.leaveRemoteRoom,
  );
  writer.addDeriver(deriveRoomListMeta);
  writer.addStateDeriver(deriveRoomListMetaState);
  const crossSigning = createCrossSigningService(ctx, uia, accounts);
  // Keys and device lists between servers, and the EDUs other servers send (federation only).
  const federationDevices = federation
    ? createFederationDeviceService(ctx, federation.client, { deviceKeys, crossSigning })
    : null;
  if (federationDevices) writer.addDeriver(federationDevices.deriver);
  const federationEdus = federationDevices
    ? createEduReceiver({ typing, receipts, presence, toDevice, devices: federationDevices })
    : null;
  // The EDUs of each received transaction (`PUT /send`) are applied here.
  if (federation && federationEdus)
    federation.rooms.setEduReceiver(async (origin, edus) => {
      await federationEdus.receiveEdus(origin, edus);
    });
  return {
    /** Application services (bridges): acting as their users, their transaction queues. */
    appservices,
    /** Registers work that commits with every new event (see `EventDeriver`). */
    addEventDeriver: writer.addDeriver,
    /** Registers work derived from the state entries state resolution changes (`StateDeriver`). */
    addStateDeriver: writer.addStateDeriver,
    notifier,
    accountData,
    pushRules: createPushRuleService(accountData),
    presence,
    typing,
    receipts,
    deviceKeys,
    toDevice,
    filters: createFilterService(ctx),
    sync: createSyncService(ctx, timeline, notifier, sources),
    slidingSync: createSlidingSyncService(ctx, timeline, notifier, sources),
    roomSummary: createRoomSummaryService(ctx, federation),
    rooms,
    membership,
    roomEvents: createRoomEventService(
      ctx,
      writer,
      federation ? (roomIds) => federation.partialState.awaitFullState(roomIds) : undefined,
    ),
    directory,
    timeline,
    relations: createRelationService(ctx, timeline),
    search,
    notifications,
    /** `/pushers` and `/pushers/set`. */
    pushers: createPusherService(ctx),
    /** Delivers the push queue to push gateways (started by main.ts). */
    pushSender,
    /** Evaluates push rules for events into big rooms after their transaction (main.ts starts it). */
    pushEvaluation: createPushEvaluationWorker(ctx, notifications, () => pushSender.wake()),
    /** Moves big rooms' members' directory reach after join rule changes (main.ts starts it). */
    userDirectoryReach: createDirectoryReachWorker(ctx),
    /** Presence time-outs: syncing users' times written, timed-out presence applied. */
    presenceTimeouts: createPresenceTimeouts(ctx, presence),
    mutualRooms: createMutualRoomsService(
      ctx,
      federation
        ? async (requester, userIds) => {
            if (userIds.every((u) => u.endsWith(`:${ctx.settings.serverName}`))) return;
            const rooms = await ctx.storage.stores.partialState.selectPartialRoomsOfUser(requester);
            await federation.partialState.awaitFullState(rooms);
          }
        : undefined,
    ),
    memberLists: createMemberListService(
      ctx,
      timeline.present,
      federation
        ? async (roomIds) => {
            await federation.partialState.awaitFullState(roomIds);
          }
        : undefined,
    ),
    settings: ctx.settings,
    accounts,
    deactivation,
    sessions: createSessionService(ctx, accounts),
    devices: createDeviceService(ctx, uia, accounts),
    profiles,
    federation,
    admin: createAdminServices(ctx, { profiles, deactivation, timeline, writer, rooms }),
    health: createHealthService(ctx),
    media: createMediaService(ctx, {
      federationClient: federation?.client ?? null,
      federationTimeoutMs: ctx.settings.federation?.requestTimeoutMs ?? 10_000,
    }),
    keyBackup: createKeyBackupService(ctx),
    crossSigning,
    userDirectory,
    dehydratedDevices: createDehydratedDeviceService(ctx, deviceKeys),
    /** E2EE across servers: serving local keys, asking other servers (null: no federation). */
    federationDevices,
    /** Applies EDUs received from other servers: `receiveEdus(origin, edus)`. */
    federationEdus,
    /** Rooms with events from other servers: state at every event, outliers, resolution. */
    roomDag,
  };
}

export type Services = ReturnType<typeof createServices>;
export type { Requester, ServiceContext, ServiceSettings } from './context.js';
export type { MutualRoomsPage } from './mutual-rooms.js';
export type { AppendedEvent, EventDeriver } from './event-writer.js';
export type { ResolvedEntry, StateDeriver } from './event-writer.js';
export type { MediaContent, MediaSettings } from './media/index.js';
