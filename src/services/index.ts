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
import { createTypingService } from './typing.js';
import { createReceiptService } from './receipts.js';
import { createDeviceKeyService } from './device-keys.js';
import { createToDeviceService } from './to-device.js';
import { createDeactivationService } from './deactivation.js';
import { createHealthService } from './health.js';
import { createSlidingSyncService } from './sliding-sync/index.js';
import { deriveRoomListMeta } from './sliding-sync/room-list-meta.js';
import { createRoomSummaryService } from './room-summary.js';

export function createServices(ctx: ServiceContext) {
  const uia = createUiaService(ctx);
  const accounts = createAccountService(ctx, uia);
  const writer = createEventWriter(ctx);
  const rooms = createRoomService(ctx, writer);
  const membership = createMembershipService(ctx, writer, rooms);
  const timeline = createTimelineService(ctx, writer);
  const notifier = createNotifier(ctx.storage);
  const accountData = createAccountDataService(ctx);
  const presence = createPresenceService(ctx);
  const typing = createTypingService(ctx);
  const receipts = createReceiptService(ctx, accountData);
  const deviceKeys = createDeviceKeyService(ctx);
  const toDevice = createToDeviceService(ctx);
  // What /sync gathers besides room events.
  const sources: SyncSources = { accountData, presence, receipts, typing, toDevice, deviceKeys };
  writer.addDeriver(deriveRoomListMeta);
  return {
    /** Registers work that commits with every new event (see `EventDeriver`). */
    addEventDeriver: writer.addDeriver,
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
    roomSummary: createRoomSummaryService(ctx),
    rooms,
    membership,
    roomEvents: createRoomEventService(ctx, writer),
    directory: createDirectoryService(ctx),
    timeline,
    mutualRooms: createMutualRoomsService(ctx),
    memberLists: createMemberListService(ctx, timeline.present),
    settings: ctx.settings,
    accounts,
    deactivation: createDeactivationService(ctx, uia, accounts, writer, rooms),
    sessions: createSessionService(ctx, accounts),
    devices: createDeviceService(ctx, uia, accounts),
    profiles: createProfileService(ctx, membership),
    health: createHealthService(ctx),
  };
}

export type Services = ReturnType<typeof createServices>;
export type { Requester, ServiceContext, ServiceSettings } from './context.js';
export type { MutualRoomsPage } from './mutual-rooms.js';
export type { AppendedEvent, EventDeriver } from './event-writer.js';
