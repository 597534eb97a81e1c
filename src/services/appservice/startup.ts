/**
 * At start: what the database records of each registration is brought up to date. The
 * record of which namespaced users are joined or invited where (which the event deriver
 * keeps as member events happen) is rebuilt from the current memberships for a service that
 * is new or whose user namespaces or sender changed, so a bridge registered after its users
 * joined rooms is pushed those rooms' events; a service no longer registered is forgotten.
 * Idempotent: a start with the same registrations rebuilds nothing.
 */
import { isServiceUser, type AppServiceRegistration } from '../../core/appservice.js';
import type { ServiceContext } from '../context.js';

/** What the room-user record of a service depends on. */
const usersKeyOf = (r: AppServiceRegistration): string =>
  JSON.stringify([r.senderLocalpart, r.namespaces.users.map((ns) => ns.source).sort()]);

/** Brings the records up to date; answers the IDs of the services whose rooms were rebuilt. */
export async function recordRegistrations(
  ctx: ServiceContext,
  registrations: readonly AppServiceRegistration[],
): Promise<string[]> {
  const serverName = ctx.settings.serverName;
  return ctx.storage.tx('recordAppServices', async (stores) => {
    await stores.appservices.deleteRegistrationsExcept(registrations.map((r) => r.id));
    const recorded = await stores.appservices.selectRegistrations();
    const rebuilt: string[] = [];
    let memberships: { roomId: string; userId: string }[] | null = null;
    for (const r of registrations) {
      const usersKey = usersKeyOf(r);
      const before = recorded.get(r.id);
      if (before?.usersKey !== usersKey) {
        memberships ??= await stores.appservices.selectLocalMemberships(serverName);
        await stores.appservices.replaceRoomUsers(
          r.id,
          memberships.filter((m) => isServiceUser(r, m.userId, serverName)),
        );
        rebuilt.push(r.id);
      }
      const deviceLists = r.msc3202 && r.url !== null;
      if (before?.usersKey !== usersKey || before.deviceLists !== deviceLists)
        await stores.appservices.upsertRegistration(r.id, { usersKey, deviceLists });
    }
    return rebuilt;
  });
}
