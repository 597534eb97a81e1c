/** Registers every client-server API route module under its path prefixes. */
import { accountRoutes } from './account.js';
import { deviceRoutes } from './devices.js';
import { loginRoutes } from './login.js';
import { V3_PREFIXES, type RoutePlugin } from './plugin.js';
import { profileRoutes } from './profile.js';
import { registrationRoutes } from './registration.js';
import { versionRoutes } from './versions.js';
import { roomRoutes } from './rooms.js';
import { membershipRoutes } from './membership.js';
import { roomStateRoutes } from './room-state.js';
import { directoryRoutes } from './directory.js';
import { timelineRoutes } from './timeline.js';
import { memberListRoutes, roomListingRoutes } from './member-lists.js';
import { mutualRoomsRoutes } from './mutual-rooms.js';
import { accountDataRoutes } from './account-data.js';
import { pushRuleRoutes } from './push-rules.js';
import { presenceRoutes } from './presence.js';
import { serverInfoRoutes } from './server-info.js';
import { syncRoutes } from './sync.js';
import { typingRoutes } from './typing.js';
import { receiptRoutes } from './receipts.js';
import { keyRoutes } from './keys.js';
import { toDeviceRoutes } from './to-device.js';
import { roomKeyRoutes } from './room-keys.js';
import { crossSigningRoutes } from './cross-signing.js';
import { userDirectoryRoutes } from './user-directory.js';

import { relationRoutes } from './relations.js';
import { searchRoutes } from './search.js';
import { notificationRoutes } from './notifications.js';
import { pusherRoutes } from './pushers.js';

import { reportRoutes } from './reports.js';
import { registrationTokenValidityRoutes } from './registration-token-validity.js';
import { slidingSyncRoutes } from './sliding-sync.js';
import { roomSummaryRoutes } from './room-summary.js';
import { dehydratedDeviceRoutes } from './dehydrated-devices.js';

const v3Modules: RoutePlugin[] = [
  registrationRoutes,
  loginRoutes,
  accountRoutes,
  deviceRoutes,
  profileRoutes,
  roomRoutes,
  membershipRoutes,
  roomStateRoutes,
  directoryRoutes,
  timelineRoutes,
  memberListRoutes,
  accountDataRoutes,
  pushRuleRoutes,
  presenceRoutes,
  serverInfoRoutes,
  syncRoutes,
  typingRoutes,
  receiptRoutes,
  keyRoutes,
  toDeviceRoutes,
  roomKeyRoutes,
  crossSigningRoutes,
  userDirectoryRoutes,

  searchRoutes,
  notificationRoutes,
  pusherRoutes,

  reportRoutes,
];

export const clientRoutes: RoutePlugin = async (app, options) => {
  await app.register(versionRoutes, options);
  await app.register(mutualRoomsRoutes, options);
  await app.register(roomListingRoutes, options);
  await app.register(relationRoutes, options);

  await app.register(registrationTokenValidityRoutes, options);
  await app.register(slidingSyncRoutes, options);
  await app.register(roomSummaryRoutes, options);
  await app.register(dehydratedDeviceRoutes, options);
  for (const prefix of V3_PREFIXES) {
    for (const module of v3Modules) await app.register(module, { ...options, prefix });
  }
};
