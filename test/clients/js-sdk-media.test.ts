/**
 * matrix-js-sdk's media calls against Commons: a user uploads an avatar (uploadContent) and
 * sets it; another member sees it in /joined_members and downloads its thumbnail through the
 * authenticated path the SDK builds (mxcUrlToHttp with useAuthentication).
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import sharp from 'sharp';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { createSdkClient } from '../helpers/matrix-js-sdk.js';

forEachDatabase(
  'matrix-js-sdk: avatar upload, joined members, authenticated thumbnail',
  (dialect) => {
    let server: TestServer;
    let alice: TestUser;
    let bob: TestUser;
    before(async () => {
      server = await startTestServer(dialect);
      alice = await registerUser(server);
      bob = await registerUser(server);
    });
    after(async () => server.close());

    it('uploads an avatar, sets it, and another member downloads its thumbnail', async () => {
      const aliceClient = await createSdkClient(server, alice);
      const bobClient = await createSdkClient(server, bob);
      const { room_id: roomId } = await aliceClient.createRoom({});
      await aliceClient.invite(roomId, bob.userId);
      await bobClient.joinRoom(roomId);

      const avatar = await sharp({
        create: { width: 400, height: 300, channels: 3, background: { r: 10, g: 160, b: 90 } },
      })
        .png()
        .toBuffer();
      const { content_uri: contentUri } = await aliceClient.uploadContent(avatar, {
        type: 'image/png',
        name: 'avatar.png',
      });
      assert.match(contentUri, /^mxc:\/\/test\.local\/[A-Za-z0-9_-]+$/);
      await aliceClient.setAvatarUrl(contentUri);

      const members = await bobClient.getJoinedRoomMembers(roomId);
      assert.equal(members.joined[alice.userId]?.avatar_url, contentUri);

      const url = bobClient.mxcUrlToHttp(contentUri, 96, 96, 'crop', false, true, true);
      assert.ok(url?.includes('/_matrix/client/v1/media/thumbnail/'), url ?? '');
      const response = await fetch(url ?? '', {
        headers: { Authorization: `Bearer ${bob.accessToken}` },
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'image/png');
      const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
      assert.deepEqual([meta.width, meta.height], [96, 96]);

      // The whole file too, and without a token the authenticated path refuses.
      const full = bobClient.mxcUrlToHttp(
        contentUri,
        undefined,
        undefined,
        undefined,
        false,
        true,
        true,
      );
      const whole = await fetch(full ?? '', {
        headers: { Authorization: `Bearer ${bob.accessToken}` },
      });
      assert.deepEqual(Buffer.from(await whole.arrayBuffer()), avatar);
      assert.equal((await fetch(full ?? '')).status, 401);
    });
  },
);
