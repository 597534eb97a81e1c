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

export function createServices(ctx: ServiceContext) {
  const uia = createUiaService(ctx);
  const accounts = createAccountService(ctx, uia);
  const writer = createEventWriter(ctx);
  const rooms = createRoomService(ctx, writer);
  const membership = createMembershipService(ctx, writer, rooms);
  const timeline = createTimelineService(ctx, writer);
  return {
    rooms,
    membership,
    roomEvents: createRoomEventService(ctx, writer),
    directory: createDirectoryService(ctx),
    timeline,
    mutualRooms: createMutualRoomsService(ctx),
    memberLists: createMemberListService(ctx, timeline.present),
    settings: ctx.settings,
    accounts,
    sessions: createSessionService(ctx, accounts),
    devices: createDeviceService(ctx, uia, accounts),
    profiles: createProfileService(ctx, membership),
  };
}

export type Services = ReturnType<typeof createServices>;
export type { Requester, ServiceContext, ServiceSettings } from './context.js';
