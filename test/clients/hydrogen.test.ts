/**
 * Hydrogen against Commons in a real browser: hydrogen-view-sdk's whole app (bundled with
 * esbuild, served on 127.0.0.1, so every request is cross-origin) in Debian's headless
 * Chromium, driven by playwright-core (see test/clients/hydrogen/harness.ts).
 *
 * Over HTTP, Bob creates a room, invites Alice, who joins, and says something; he also invites
 * her to a second room. Then, through Hydrogen's own screens: Alice logs in with her password
 * (Hydrogen finds the server through /.well-known, uploads its Olm device keys and syncs), the
 * room list shows both rooms, she accepts the invitation, opens the first room and sees Bob's
 * message, then one he sends while she looks (it must arrive through the long-polling /sync),
 * and an image Bob sends (an m.image of media he uploaded) is drawn, fetched by Hydrogen's service
 * worker on the authenticated /_matrix/client/v1/media path with her token; the member list,
 * which Hydrogen loads with /members, shows both of them. A screenshot of
 * the last screen is kept in test-artifacts/hydrogen-<dialect>.png.
 *
 * Without Chromium at /usr/bin/chromium (or COMMONS_TEST_CHROMIUM) the suite is skipped, and the
 * run's banner says so; CI installs Chromium and sets COMMONS_TEST_REQUIRE_CHROMIUM=1.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { CHROMIUM, skipUnless } from '../helpers/requirements.js';
import { openHydrogen, type HydrogenPage } from './hydrogen/harness.js';

const C = '/_matrix/client/v3';
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const ROOM_NAME = 'Hydrogen test room';
const INVITE_ROOM_NAME = 'Hydrogen invitation';
const ALICE_NAME = 'Alice Hydrogen';
const BOB_NAME = 'Bob Commons';

forEachDatabase(
  'Hydrogen in headless Chromium',
  (dialect) => {
    let server: TestServer | undefined;
    let hydrogen: HydrogenPage | undefined;
    let alice: TestUser;
    let bob: TestUser;
    let roomId: string;
    let inviteRoomId: string;
    let txn = 0;
    /** Set when a step fails: the steps after it depend on it and fail at once. */
    let broken: string | undefined;

    const call = async (user: TestUser, method: string, urlPath: string, body: unknown = {}) => {
      assert.ok(server);
      const res = await server.request<Record<string, unknown>>(method, `${C}${urlPath}`, {
        token: user.accessToken,
        body,
      });
      assert.equal(res.status, 200, `${method} ${urlPath}: ${JSON.stringify(res.body)}`);
      return res.body;
    };
    const say = (user: TestUser, body: string) =>
      call(user, 'PUT', `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t${++txn}`, {
        msgtype: 'm.text',
        body,
      });
    /** Runs one step of the scenario; the steps after a failed one are not attempted. */
    const step = (name: string, body: (h: HydrogenPage) => Promise<void>) =>
      it(name, async () => {
        if (broken !== undefined) throw new Error(`not attempted: "${broken}" failed`);
        try {
          assert.ok(hydrogen, 'Hydrogen did not start');
          await body(hydrogen);
        } catch (err) {
          broken = name;
          throw err;
        }
      });

    before(async () => {
      server = await startTestServer(dialect);
      alice = await registerUser(server);
      bob = await registerUser(server);
      await call(alice, 'PUT', `/profile/${encodeURIComponent(alice.userId)}/displayname`, {
        displayname: ALICE_NAME,
      });
      await call(bob, 'PUT', `/profile/${encodeURIComponent(bob.userId)}/displayname`, {
        displayname: BOB_NAME,
      });
      roomId = (
        await call(bob, 'POST', '/createRoom', {
          preset: 'private_chat',
          name: ROOM_NAME,
          invite: [alice.userId],
        })
      ).room_id as string;
      await call(alice, 'POST', `/join/${encodeURIComponent(roomId)}`);
      await say(bob, 'Hello Alice, this came over plain HTTP');
      inviteRoomId = (
        await call(bob, 'POST', '/createRoom', {
          preset: 'private_chat',
          name: INVITE_ROOM_NAME,
          invite: [alice.userId],
        })
      ).room_id as string;
      hydrogen = await openHydrogen(server.url);
    });

    after(async () => {
      if (hydrogen) {
        if (process.env.COMMONS_TEST_HYDROGEN_REPORT === '1') {
          console.log(`Hydrogen [${dialect}]:\n${await hydrogen.report()}`);
        }
        mkdirSync(ARTIFACTS, { recursive: true });
        await hydrogen
          .screenshot(path.join(ARTIFACTS, `hydrogen-${dialect}.png`))
          .catch((err: Error) => console.error(`screenshot failed: ${err.message}`));
        await hydrogen.close();
      }
      await server?.close();
    });

    step(
      'logs in with a password and shows the room and the invitation in the room list',
      async (h) => {
        const { page } = h;
        await h.until('the password login form', () => page.locator('#username').isVisible());
        const localpart = alice.userId.slice(1, alice.userId.indexOf(':'));
        await page.locator('#username').fill(localpart);
        await page.locator('#password').fill(alice.password);
        await page.getByRole('button', { name: 'Log In' }).click();
        const tile = page.locator('.RoomList li', { hasText: ROOM_NAME });
        await h.until('the room in the room list', () => tile.isVisible(), 30_000);
        const inviteTile = page.locator('.RoomList li', { hasText: INVITE_ROOM_NAME });
        await h.until('the invitation in the room list', () => inviteTile.isVisible());
        assert.ok(
          h.requests.some((r) => /^POST \S+\/login → 200$/.test(r)),
          'Hydrogen logged in through POST /login',
        );
        assert.ok(
          h.requests.some((r) => /^POST \S+\/keys\/upload → 200$/.test(r)),
          'Hydrogen uploaded its device keys',
        );
      },
    );

    step('accepts an invitation', async (h) => {
      const { page } = h;
      await page.locator('.RoomList li', { hasText: INVITE_ROOM_NAME }).click();
      const invite = page.locator('.InviteView');
      await h.until('the invitation', () => invite.isVisible());
      await invite.getByRole('button', { name: 'Accept' }).click();
      const header = page.locator('.RoomView .RoomHeader h2', { hasText: INVITE_ROOM_NAME });
      await h.until('the joined room', () => header.isVisible());
      assert.ok(server);
      const joined = await server.request<{ joined: Record<string, unknown> }>(
        'GET',
        `${C}/rooms/${encodeURIComponent(inviteRoomId)}/joined_members`,
        { token: bob.accessToken },
      );
      assert.ok(alice.userId in joined.body.joined, JSON.stringify(joined.body));
    });

    step("opens the room and shows Bob's message", async (h) => {
      const { page } = h;
      await page.locator('.RoomList li', { hasText: ROOM_NAME }).click();
      await h.until('the room view', () => page.locator('.RoomView .RoomHeader h2').isVisible());
      assert.equal(await page.locator('.RoomView .RoomHeader h2').innerText(), ROOM_NAME);
      const message = page.locator('.Timeline_message', {
        hasText: 'Hello Alice, this came over plain HTTP',
      });
      await h.until("Bob's message in the timeline", () => message.isVisible());
      assert.match(await message.locator('.Timeline_messageSender').innerText(), /Bob Commons/);
    });

    step('shows a message Bob sends while the room is open (incremental /sync)', async (h) => {
      await say(bob, 'And this one arrived while you were looking');
      const message = h.page.locator('.Timeline_message', {
        hasText: 'And this one arrived while you were looking',
      });
      await h.until('the new message in the timeline', () => message.isVisible());
    });

    step('renders an image message, its thumbnail fetched on the authenticated path', async (h) => {
      assert.ok(server);
      // A 320×200 PNG of one colour, uploaded by Bob and sent as m.image.
      const sharp = (await import('sharp')).default;
      const png = await sharp({
        create: { width: 320, height: 200, channels: 3, background: { r: 30, g: 140, b: 90 } },
      })
        .png()
        .toBuffer();
      const uploaded = await fetch(`${server.url}/_matrix/media/v3/upload?filename=green.png`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${bob.accessToken}`, 'Content-Type': 'image/png' },
        body: png,
      });
      assert.equal(uploaded.status, 200);
      const { content_uri: url } = (await uploaded.json()) as { content_uri: string };
      await call(bob, 'PUT', `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t${++txn}`, {
        msgtype: 'm.image',
        body: 'green.png',
        url,
        info: { mimetype: 'image/png', size: png.length, w: 320, h: 200 },
      });
      const image = h.page.locator('.Timeline_message img').last();
      const size = await h.until(
        'the image drawn in the timeline',
        async () => {
          if (!(await image.isVisible())) return null;
          const drawn = await image.evaluate((el) => {
            const img = el as unknown as { complete: boolean; naturalWidth: number; src: string };
            return { complete: img.complete, width: img.naturalWidth, src: img.src };
          });
          return drawn.complete && drawn.width > 0 ? drawn : null;
        },
        30_000,
      );
      assert.ok(size.width > 0, JSON.stringify(size));
      assert.match(size.src, /\/_matrix\/client\/v1\/media\/(thumbnail|download)\//, size.src);
    });

    step('shows the members, loaded with /members', async (h) => {
      const { page } = h;
      await page.locator('.RoomHeader .room-options').click();
      await page.locator('.menu .menu-item', { hasText: 'Room details' }).click();
      const people = page.locator('.RoomDetailsView_row', { hasText: 'People' });
      const count = people.locator('.RoomDetailsView_value');
      await h.until('the room details with 2 members', async () =>
        (await count.isVisible()) ? (await count.innerText()).trim() === '2' : false,
      );
      await people.click();
      const names = page.locator('.MemberListView .MemberTileView_name');
      const shown = await h.until('both members in the member list', async () => {
        const all = (await names.allInnerTexts()).map((n) => n.trim()).sort();
        return all.length === 2 ? all : null;
      });
      assert.deepEqual(shown, [ALICE_NAME, BOB_NAME]);
      const membersPath = `/rooms/${encodeURIComponent(roomId)}/members`;
      assert.ok(
        h.requests.some((r) => r.includes(membersPath) && r.endsWith('→ 200')),
        `Hydrogen loaded the member list with GET …${membersPath}`,
      );
    });
  },
  { skip: skipUnless(CHROMIUM) },
);
