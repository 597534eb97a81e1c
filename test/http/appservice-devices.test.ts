import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { TestBridge, writeRegistrations } from '../helpers/appservice.js';

const V3 = '/_matrix/client/v3';
const r = encodeURIComponent;

type PerDevice<T> = Record<string, Record<string, T>>;

forEachDatabase(
  'application services: presence, to-device, device lists, key counts',
  (dialect) => {
    let server: TestServer;
    const encrypting = new TestBridge();
    const plain = new TestBridge();
    let human: TestUser;
    let roomId: string;
    const encToken = 'as_enc_0123456789';
    const ghost = '@_enc_v:test.local';
    const ghostDevice = 'GHOSTDEV';

    before(async () => {
      await encrypting.start();
      await plain.start();
      const service = (id: string, url: string, extra: Record<string, unknown>) => ({
        id,
        url,
        as_token: `as_${id}_0123456789`,
        hs_token: `hs_${id}_0123456789`,
        sender_localpart: `${id}bot`,
        namespaces: { users: [{ exclusive: true, regex: `@_${id}_.*:test\\.local` }] },
        ...extra,
      });
      server = await startTestServer(dialect, {
        COMMONS_APP_SERVICES_CONFIG_FILES: writeRegistrations([
          service('enc', encrypting.url, {
            receive_ephemeral: true,
            'org.matrix.msc3202': true,
            'io.element.msc4190': true,
          }),
          service('plain', plain.url, {}),
        ]),
        COMMONS_APP_SERVICES_RETRY_MAX_SECONDS: '1',
      });
      human = await registerUser(server);
      const created = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
        token: human.accessToken,
        body: { preset: 'public_chat' },
      });
      roomId = created.body.room_id;
      for (const id of ['enc', 'plain']) {
        const token = `as_${id}_0123456789`;
        const registered = await server.request('POST', `${V3}/register`, {
          token,
          body: { type: 'm.login.application_service', username: `_${id}_v`, inhibit_login: true },
        });
        assert.equal(registered.status, 200);
        const joined = await server.request(
          'POST',
          `${V3}/rooms/${r(roomId)}/join?user_id=${r(`@_${id}_v:test.local`)}`,
          { token },
        );
        assert.equal(joined.status, 200);
      }
      // The ghost's device, made by the service (MSC4190).
      const device = await server.request(
        'PUT',
        `${V3}/devices/${ghostDevice}?user_id=${r(ghost)}`,
        { token: encToken, body: { display_name: 'bridge' } },
      );
      assert.equal(device.status, 200, JSON.stringify(device.body));
    });
    after(async () => {
      await server.close();
      await encrypting.stop();
      await plain.stop();
    });

    const field = <T>(bridge: TestBridge, name: string): T[] =>
      bridge.transactions.map((t) => t.body[name] as T).filter((v) => v !== undefined);

    it('pushes presence of users sharing a room to a service receiving ephemeral events', async () => {
      const set = await server.request('PUT', `${V3}/presence/${r(human.userId)}/status`, {
        token: human.accessToken,
        body: { presence: 'online', status_msg: 'bridging' },
      });
      assert.equal(set.status, 200);
      const presence = await eventually(
        async () =>
          field<{ type: string; sender: string; content: Record<string, unknown> }[]>(
            encrypting,
            'de.sorunome.msc2409.ephemeral',
          )
            .flat()
            .filter((e) => e.type === 'm.presence'),
        (list) => list.length > 0,
        20_000,
      );
      assert.equal(presence[0]?.sender, human.userId);
      assert.equal(presence[0]?.content.presence, 'online');
      assert.equal(presence[0]?.content.status_msg, 'bridging');
    });

    it('pushes to-device messages for its users, with their recipient', async () => {
      const sent = await server.request('PUT', `${V3}/sendToDevice/m.test.ping/td1`, {
        token: human.accessToken,
        body: { messages: { [ghost]: { [ghostDevice]: { hello: 'ghost' } } } },
      });
      assert.equal(sent.status, 200);
      const toDevice = await eventually(
        async () =>
          field<Record<string, unknown>[]>(encrypting, 'de.sorunome.msc2409.to_device').flat(),
        (list) => list.length > 0,
        20_000,
      );
      assert.deepEqual(toDevice, [
        {
          type: 'm.test.ping',
          sender: human.userId,
          content: { hello: 'ghost' },
          to_user_id: ghost,
          to_device_id: ghostDevice,
        },
      ]);
      // The ghost is in the service's exclusive namespace: the service is the message's only
      // reader, so the device's /sync does not keep it too.
      const synced = await server.request<{ to_device?: { events: unknown[] } }>(
        'GET',
        `${V3}/sync?timeout=0&user_id=${r(ghost)}&device_id=${ghostDevice}`,
        { token: encToken },
      );
      assert.equal(synced.status, 200, JSON.stringify(synced.body));
      assert.deepEqual(synced.body.to_device?.events ?? [], []);
    });

    it('pushes device-list changes of users sharing a room (MSC3202)', async () => {
      const uploaded = await server.request('POST', `${V3}/keys/upload`, {
        token: human.accessToken,
        body: {
          device_keys: {
            user_id: human.userId,
            device_id: human.deviceId,
            algorithms: ['m.olm.v1.curve25519-aes-sha2'],
            keys: { [`curve25519:${human.deviceId}`]: 'abc' },
            signatures: {},
          },
        },
      });
      assert.equal(uploaded.status, 200);
      const lists = await eventually(
        async () =>
          field<{ changed: string[]; left: string[] }>(
            encrypting,
            'org.matrix.msc3202.device_lists',
          ),
        (list) => list.some((l) => l.changed.includes(human.userId)),
        20_000,
      );
      assert.deepEqual(lists.at(-1)?.left, []);
    });

    it('lists a user who no longer shares a room with its users as left (MSC3202)', async () => {
      const visitor = await registerUser(server);
      const joined = await server.request('POST', `${V3}/join/${r(roomId)}`, {
        token: visitor.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200);
      const left = await server.request('POST', `${V3}/rooms/${r(roomId)}/leave`, {
        token: visitor.accessToken,
        body: {},
      });
      assert.equal(left.status, 200);
      await eventually(
        async () =>
          field<{ changed: string[]; left: string[] }>(
            encrypting,
            'org.matrix.msc3202.device_lists',
          ),
        (lists) => lists.some((l) => l.left.includes(visitor.userId)),
        20_000,
      );
      // The human, still in the room, is never listed as left.
      const all = field<{ left: string[] }>(encrypting, 'org.matrix.msc3202.device_lists');
      assert.ok(all.every((l) => !l.left.includes(human.userId)));
    });

    it('lists the members it no longer shares a room with when its own last user there leaves (MSC3202)', async () => {
      // Carol shares only her room with the service; the human shares the first room too.
      const carol = await registerUser(server);
      const created = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
        token: carol.accessToken,
        body: { preset: 'public_chat' },
      });
      const carolRoom = created.body.room_id;
      const humanJoined = await server.request('POST', `${V3}/join/${r(carolRoom)}`, {
        token: human.accessToken,
        body: {},
      });
      assert.equal(humanJoined.status, 200);
      const ghosts = ['@_enc_a:test.local', '@_enc_b:test.local'];
      for (const user of ghosts) {
        const registered = await server.request('POST', `${V3}/register`, {
          token: encToken,
          body: {
            type: 'm.login.application_service',
            username: user.slice(1, user.indexOf(':')),
            inhibit_login: true,
          },
        });
        assert.equal(registered.status, 200);
        const joined = await server.request(
          'POST',
          `${V3}/rooms/${r(carolRoom)}/join?user_id=${r(user)}`,
          { token: encToken },
        );
        assert.equal(joined.status, 200);
      }
      // The first ghost's arrival: the service now shares a room with Carol (changed); the
      // human shared one already.
      const lists = () =>
        field<{ changed: string[]; left: string[] }>(encrypting, 'org.matrix.msc3202.device_lists');
      await eventually(
        async () => lists(),
        (all) => all.some((l) => l.changed.includes(carol.userId)),
        20_000,
      );
      // One ghost leaves: the other is still there, nobody is listed.
      const leftOne = await server.request(
        'POST',
        `${V3}/rooms/${r(carolRoom)}/leave?user_id=${r(ghosts[0] as string)}`,
        { token: encToken, body: {} },
      );
      assert.equal(leftOne.status, 200);
      // Carol kicks the last one: she shares no room with the service's users any more.
      const kicked = await server.request<{ event_id?: string }>(
        'POST',
        `${V3}/rooms/${r(carolRoom)}/kick`,
        { token: carol.accessToken, body: { user_id: ghosts[1] } },
      );
      assert.equal(kicked.status, 200);
      const kickEvent = await eventually(
        async () =>
          encrypting.events.find(
            (e) =>
              e.room_id === carolRoom && e.type === 'm.room.member' && e.sender === carol.userId,
          ),
        (event) => event !== undefined,
        20_000,
      );
      const listedAt = await eventually(
        async () =>
          encrypting.transactions.findIndex((t) =>
            (
              t.body['org.matrix.msc3202.device_lists'] as { left: string[] } | undefined
            )?.left.includes(carol.userId),
          ),
        (index) => index >= 0,
        20_000,
      );
      // Listed by the kick, not by the first ghost's leaving.
      const kickedAt = encrypting.transactions.findIndex((t) =>
        t.events.some((e) => e.event_id === kickEvent?.event_id),
      );
      assert.ok(listedAt >= kickedAt, `listed in transaction ${listedAt}, kick in ${kickedAt}`);
      // The human still shares the first room; the service's own users are never listed.
      const all = field<{ left: string[] }>(encrypting, 'org.matrix.msc3202.device_lists');
      for (const user of [human.userId, ...ghosts, '@encbot:test.local'])
        assert.ok(
          all.every((l) => !l.left.includes(user)),
          user,
        );
    });

    it('lists a user who starts sharing a room with its users as changed, once (MSC3202)', async () => {
      const dave = await registerUser(server);
      const joined = await server.request('POST', `${V3}/join/${r(roomId)}`, {
        token: dave.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200);
      type Lists = { changed: string[]; left: string[] };
      const lists = () => field<Lists>(encrypting, 'org.matrix.msc3202.device_lists');
      await eventually(
        async () => lists(),
        (all) => all.some((l) => l.changed.includes(dave.userId)),
        20_000,
      );
      // A profile change (a join after a join) is no new sharing; leaving is.
      const renamed = await server.request('PUT', `${V3}/profile/${r(dave.userId)}/displayname`, {
        token: dave.accessToken,
        body: { displayname: 'Dave' },
      });
      assert.equal(renamed.status, 200);
      const left = await server.request('POST', `${V3}/rooms/${r(roomId)}/leave`, {
        token: dave.accessToken,
        body: {},
      });
      assert.equal(left.status, 200);
      await eventually(
        async () => lists(),
        (all) => all.some((l) => l.left.includes(dave.userId)),
        20_000,
      );
      assert.equal(lists().filter((l) => l.changed.includes(dave.userId)).length, 1);
      const rename = encrypting.events.find(
        (e) => e.sender === dave.userId && e.content.displayname === 'Dave',
      );
      assert.ok(rename, 'the profile change reached the bridge before the leave');
    });

    it('pushes the one-time key counts and unused fallback key types of its users’ devices', async () => {
      const uploaded = await server.request(
        'POST',
        `${V3}/keys/upload?user_id=${r(ghost)}&device_id=${ghostDevice}`,
        {
          token: encToken,
          body: {
            one_time_keys: {
              'signed_curve25519:k1': { key: 'a' },
              'signed_curve25519:k2': { key: 'b' },
            },
            fallback_keys: { 'signed_curve25519:f1': { key: 'f', fallback: true } },
          },
        },
      );
      assert.equal(uploaded.status, 200, JSON.stringify(uploaded.body));
      const countsOf = () =>
        field<PerDevice<Record<string, number>>>(
          encrypting,
          'org.matrix.msc3202.device_one_time_keys_count',
        ).map((c) => c[ghost]?.[ghostDevice]?.signed_curve25519);
      await eventually(
        async () => countsOf(),
        (counts) => counts.includes(2),
        20_000,
      );
      const fallback = field<PerDevice<string[]>>(
        encrypting,
        'org.matrix.msc3202.device_unused_fallback_key_types',
      );
      assert.deepEqual(fallback.at(-1)?.[ghost]?.[ghostDevice], ['signed_curve25519']);
      // Synapse's other spelling carries the same counts.
      assert.deepEqual(
        field(encrypting, 'org.matrix.msc3202.device_one_time_key_counts'),
        field(encrypting, 'org.matrix.msc3202.device_one_time_keys_count'),
      );
      // A claim takes one: the service is told the count that is left.
      const claimed = await server.request('POST', `${V3}/keys/claim`, {
        token: human.accessToken,
        body: { one_time_keys: { [ghost]: { [ghostDevice]: 'signed_curve25519' } } },
      });
      assert.equal(claimed.status, 200);
      await eventually(
        async () => countsOf(),
        (counts) => counts.at(-1) === 1,
        20_000,
      );
    });

    it('pushes none of these to a service that did not ask', async () => {
      const marker = await server.request<{ event_id: string }>(
        'PUT',
        `${V3}/rooms/${r(roomId)}/send/m.room.message/m1`,
        { token: human.accessToken, body: { msgtype: 'm.text', body: 'marker' } },
      );
      await eventually(
        async () => plain.events.map((e) => e.event_id),
        (ids) => ids.includes(marker.body.event_id),
        20_000,
      );
      for (const name of [
        'ephemeral',
        'de.sorunome.msc2409.ephemeral',
        'de.sorunome.msc2409.to_device',
        'org.matrix.msc3202.device_lists',
        'org.matrix.msc3202.device_one_time_keys_count',
      ])
        assert.deepEqual(field(plain, name), [], name);
    });
  },
);
