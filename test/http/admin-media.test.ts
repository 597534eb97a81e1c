/**
 * The media admin API (docs/admin.md), on both databases: quarantine by ID, by room and by
 * user (quarantined media answers 404 to downloads and thumbnails, until lifted), a user's
 * media paged, deletion by ID, by age and size, and of a user's media; non-admins refused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError, uniqueName } from '../helpers/assertions.js';
import { ADMIN_SECRET, registerAdmin } from '../helpers/admin.js';

const A1 = '/_synapse/admin/v1';
const C = '/_matrix/client/v3';
const DOWNLOAD = '/_matrix/client/v1/media/download';
const e = encodeURIComponent;

interface MediaJson {
  media_id: string;
  media_type: string | null;
  media_length: number | null;
  upload_name: string | null;
  created_ts: number;
  quarantined_by: string | null;
}

forEachDatabase('media admin API', (dialect) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  before(async () => {
    server = await startTestServer(dialect, { COMMONS_REGISTRATION_SHARED_SECRET: ADMIN_SECRET });
    admin = await registerAdmin(server);
    alice = await registerUser(server, uniqueName('alice'));
    bob = await registerUser(server, uniqueName('bob'));
  });
  after(async () => server.close());

  const call = <T = Record<string, unknown>>(
    user: TestUser,
    method: string,
    path: string,
    body?: unknown,
  ) => server.request<T>(method, path, { token: user.accessToken, body });

  async function upload(user: TestUser, text: string, name = 'file.txt'): Promise<string> {
    const response = await fetch(`${server.url}/_matrix/media/v3/upload?filename=${e(name)}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${user.accessToken}`, 'Content-Type': 'text/plain' },
      body: text,
    });
    assert.equal(response.status, 200);
    const uri = ((await response.json()) as { content_uri: string }).content_uri;
    return uri.slice(uri.lastIndexOf('/') + 1);
  }
  const download = async (mediaId: string) =>
    (
      await fetch(`${server.url}${DOWNLOAD}/test.local/${mediaId}`, {
        headers: { Authorization: `Bearer ${alice.accessToken}` },
      })
    ).status;

  describe('refusals', () => {
    const endpoints: Array<[string, () => string]> = [
      ['POST', () => `${A1}/media/quarantine/test.local/abc`],
      ['POST', () => `${A1}/media/unquarantine/test.local/abc`],
      ['POST', () => `${A1}/room/${e('!r:test.local')}/media/quarantine`],
      ['POST', () => `${A1}/quarantine_media/${e('!r:test.local')}`],
      ['GET', () => `${A1}/room/${e('!r:test.local')}/media`],
      ['POST', () => `${A1}/user/${e('@u:test.local')}/media/quarantine`],
      ['DELETE', () => `${A1}/media/test.local/abc`],
      ['POST', () => `${A1}/media/delete?before_ts=1`],
      ['POST', () => `${A1}/media/test.local/delete?before_ts=1`],
      ['GET', () => `${A1}/users/${e('@u:test.local')}/media`],
      ['DELETE', () => `${A1}/users/${e('@u:test.local')}/media`],
    ];
    for (const [method, path] of endpoints) {
      it(`${method} ${path()}: 403 for a non-admin, 401 without a token`, async () => {
        expectError(await call(bob, method, path()), 403, 'M_FORBIDDEN');
        expectError(await server.request(method, path()), 401, 'M_MISSING_TOKEN');
      });
    }
  });

  it('quarantines one media ID: downloads answer 404 until it is lifted', async () => {
    const id = await upload(alice, 'one');
    assert.equal(await download(id), 200);
    assert.equal(
      (await call(admin, 'POST', `${A1}/media/quarantine/test.local/${id}`)).status,
      200,
    );
    assert.equal(await download(id), 404);
    const thumb = await fetch(
      `${server.url}/_matrix/client/v1/media/thumbnail/test.local/${id}?width=32&height=32`,
      { headers: { Authorization: `Bearer ${alice.accessToken}` } },
    );
    assert.equal(thumb.status, 404);
    assert.equal(
      (await call(admin, 'POST', `${A1}/media/unquarantine/test.local/${id}`)).status,
      200,
    );
    assert.equal(await download(id), 200);
    expectError(
      await call(admin, 'POST', `${A1}/media/quarantine/test.local/nonexistent`),
      404,
      'M_NOT_FOUND',
    );
    expectError(
      await call(admin, 'POST', `${A1}/media/quarantine/other.example/${id}`),
      400,
      'M_INVALID_PARAM',
    );
  });

  it("quarantines the media a room's events name, and a user's uploads", async () => {
    const inRoom = await upload(alice, 'shared');
    const avatar = await upload(alice, 'avatar');
    const outside = await upload(alice, 'kept');
    const room = await call<{ room_id: string }>(alice, 'POST', `${C}/createRoom`, {
      initial_state: [
        { type: 'm.room.avatar', state_key: '', content: { url: `mxc://test.local/${avatar}` } },
      ],
    });
    await call(alice, 'PUT', `${C}/rooms/${e(room.body.room_id)}/send/m.room.message/t1`, {
      msgtype: 'm.file',
      body: 'file',
      url: `mxc://test.local/${inRoom}`,
      info: { thumbnail_url: 'mxc://elsewhere.example/abc' },
    });
    const listed = await call<{ local: string[]; remote: string[] }>(
      admin,
      'GET',
      `${A1}/room/${e(room.body.room_id)}/media`,
    );
    assert.deepEqual(
      [...listed.body.local].sort(),
      [`mxc://test.local/${avatar}`, `mxc://test.local/${inRoom}`].sort(),
    );
    const q = await call<{ num_quarantined: number }>(
      admin,
      'POST',
      `${A1}/room/${e(room.body.room_id)}/media/quarantine`,
    );
    assert.equal(q.status, 200);
    assert.equal(q.body.num_quarantined, 2);
    assert.equal(await download(inRoom), 404);
    assert.equal(await download(avatar), 404);
    assert.equal(await download(outside), 200);
    expectError(
      await call(admin, 'POST', `${A1}/room/${e('!nope:test.local')}/media/quarantine`),
      404,
      'M_NOT_FOUND',
    );

    const carol = await registerUser(server, uniqueName('carol'));
    const c1 = await upload(carol, 'c1');
    const c2 = await upload(carol, 'c2');
    const byUser = await call<{ num_quarantined: number }>(
      admin,
      'POST',
      `${A1}/user/${e(carol.userId)}/media/quarantine`,
    );
    assert.equal(byUser.body.num_quarantined, 2);
    assert.equal(await download(c1), 404);
    assert.equal(await download(c2), 404);
    const page = await call<{ media: MediaJson[] }>(
      admin,
      'GET',
      `${A1}/users/${e(carol.userId)}/media`,
    );
    assert.deepEqual(
      page.body.media.map((m) => m.quarantined_by),
      [admin.userId, admin.userId],
    );
  });

  it("pages a user's media, with orderings", async () => {
    const dave = await registerUser(server, uniqueName('dave'));
    const ids = [
      await upload(dave, 'a', 'a.txt'),
      await upload(dave, 'bbb', 'b.txt'),
      await upload(dave, 'cc', 'c.txt'),
    ];
    const first = await call<{ media: MediaJson[]; total: number; next_token?: number }>(
      admin,
      'GET',
      `${A1}/users/${e(dave.userId)}/media?limit=2&order_by=media_length&dir=b`,
    );
    assert.equal(first.status, 200);
    assert.equal(first.body.total, 3);
    assert.deepEqual(
      first.body.media.map((m) => m.upload_name),
      ['b.txt', 'c.txt'],
    );
    assert.equal(first.body.media[0]?.media_length, 3);
    assert.equal(first.body.media[0]?.media_type, 'text/plain');
    assert.equal(first.body.next_token, 2);
    const rest = await call<{ media: MediaJson[]; next_token?: number }>(
      admin,
      'GET',
      `${A1}/users/${e(dave.userId)}/media?from=2&limit=2&order_by=media_length&dir=b`,
    );
    assert.deepEqual(
      rest.body.media.map((m) => m.media_id),
      [ids[0]],
    );
    assert.equal(rest.body.next_token, undefined);
    expectError(
      await call(admin, 'GET', `${A1}/users/${e(dave.userId)}/media?order_by=size`),
      400,
      'M_INVALID_PARAM',
    );
    expectError(
      await call(admin, 'GET', `${A1}/users/${e('@ghost:test.local')}/media`),
      404,
      'M_NOT_FOUND',
    );
    expectError(
      await call(admin, 'GET', `${A1}/users/${e('@x:other.example')}/media`),
      400,
      'M_INVALID_PARAM',
    );
  });

  it('deletes media by ID, by age and size, and all of a user', async () => {
    const id = await upload(alice, 'to delete');
    const deleted = await call<{ deleted_media: string[]; total: number }>(
      admin,
      'DELETE',
      `${A1}/media/test.local/${id}`,
    );
    assert.deepEqual(deleted.body, { deleted_media: [id], total: 1 });
    assert.equal(await download(id), 404);
    expectError(await call(admin, 'DELETE', `${A1}/media/test.local/${id}`), 404, 'M_NOT_FOUND');

    const small = await upload(alice, 'x');
    const big = await upload(alice, 'x'.repeat(5000));
    const cutoff = Date.now() + 1000;
    const bySize = await call<{ deleted_media: string[]; total: number }>(
      admin,
      'POST',
      `${A1}/media/delete?before_ts=${cutoff}&size_gt=4000`,
    );
    assert.ok(bySize.body.deleted_media.includes(big));
    assert.ok(!bySize.body.deleted_media.includes(small));
    assert.equal(await download(big), 404);
    assert.equal(await download(small), 200);
    expectError(await call(admin, 'POST', `${A1}/media/delete`), 400, 'M_MISSING_PARAM');

    const erin = await registerUser(server, uniqueName('erin'));
    const e1 = await upload(erin, 'e1');
    const gone = await call<{ deleted_media: string[]; total: number }>(
      admin,
      'DELETE',
      `${A1}/users/${e(erin.userId)}/media`,
    );
    assert.deepEqual(gone.body, { deleted_media: [e1], total: 1 });
    assert.equal(await download(e1), 404);
  });
});
