/** The admin API's services, built from the shared ones. */
import type { ServiceContext } from '../context.js';
import type { DeactivationService } from '../deactivation.js';
import type { ProfileService } from '../profiles.js';
import type { TimelineService } from '../timeline.js';
import type { EventWriter } from '../event-writer.js';
import type { RoomService } from '../rooms.js';
import { createRoomPurgeService } from './room-purges.js';
import { createRoomAdminService } from './room-admin.js';
import { createRetentionService } from './retention.js';
import { createRegistrationTokenService } from './registration-tokens.js';
import { createReportService } from './reports.js';
import { createAdminRoomService } from './rooms.js';
import { createAdminUserService } from './users.js';
import { createModerationService } from './moderation.js';
import { createServerNoticeService } from './server-notices.js';
import { createMediaAdminService } from './media.js';

export function createAdminServices(
  ctx: ServiceContext,
  deps: {
    profiles: ProfileService;
    deactivation: DeactivationService;
    timeline: TimelineService;
    writer: EventWriter;
    rooms: RoomService;
  },
) {
  const users = createAdminUserService(ctx, deps);
  return {
    users,
    rooms: createAdminRoomService(ctx, deps.timeline),
    registrationTokens: createRegistrationTokenService(ctx),
    reports: createReportService(ctx),
    purges: createRoomPurgeService(ctx, deps),
    roomAdmin: createRoomAdminService(ctx, deps),
    retention: createRetentionService(ctx),
    moderation: createModerationService(ctx, users.localUser),
    serverNotices: createServerNoticeService(ctx, deps),
    media: createMediaAdminService(ctx, users.localUser),
  };
}

export type AdminServices = ReturnType<typeof createAdminServices>;
export type { UserMediaOrder, UserMediaRow } from '../../storage/index.js';
export type {
  AdminUserRow,
  DeviceRow,
  RegistrationTokenRow,
  RoomOrder,
} from '../../storage/index.js';
