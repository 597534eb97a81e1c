/**
 * Room purges and retention passes run in one process of several on one PostgreSQL database:
 * each takes the job's lease (job_leases, migration 0062) first. A purge whose lease another
 * process holds (here: one that died mid-purge) is run by neither worker until the lease has
 * run out, then finished by one; a retention pass is skipped while another process makes one;
 * of two processes racing for a lease, one gets it. PostgreSQL only (SQLite serves one process).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, testDialects, type TestDatabase } from '../helpers/databases.js';
import { startServerOn, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { startWorker, type Worker } from '../helpers/worker.js';
import { servicesOf } from '../helpers/services.js';
import { eventually } from '../helpers/eventually.js';
import { JOB_LEASE_MS } from '../../src/services/admin/room-purges.js';

const C = '/_matrix/client/v3';
const e = encodeURIComponent;
const DAY_MS = 86_400_000;

describe(
  'admin job leases across worker processes [postgres]',
  { skip: !testDialects().includes('postgres') && 'PostgreSQL is not configured' },
  () => {
    let database: TestDatabase;
    let dataDir: string;
    let server: TestServer;
    let worker: Worker | undefined;
    let alice: TestUser;
    before(async () => {
      database = await createTestDatabase('postgres');
      dataDir = mkdtempSync(path.join(tmpdir(), 'commons-leases-'));
      server = await startServerOn(database, dataDir, {
        COMMONS_RETENTION_ENABLED: 'true',
        COMMONS_RETENTION_DEFAULT_MAX_LIFETIME_SECONDS: String(DAY_MS / 1000),
      });
      alice = await registerUser(server);
    });
    after(async () => {
      worker?.child.kill('SIGTERM');
      await server?.close();
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    async function roomWith(messages: number): Promise<string> {
      const created = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
        token: alice.accessToken,
        body: {},
      });
      for (let i = 0; i < messages; i++) {
        await server.request(
          'PUT',
          `${C}/rooms/${e(created.body.room_id)}/send/m.room.message/m${i}`,
          {
            token: alice.accessToken,
            body: { msgtype: 'm.text', body: `m${i}` },
          },
        );
      }
      return created.body.room_id;
    }
    const messageCount = async (roomId: string) =>
      (
        await server.request<{ chunk: Array<{ type: string }> }>(
          'GET',
          `${C}/rooms/${e(roomId)}/messages?dir=b&limit=100`,
          { token: alice.accessToken },
        )
      ).body.chunk.filter((ev) => ev.type === 'm.room.message').length;

    it('a purge leased by a process that died is run by no worker until its lease runs out, then by one', async () => {
      const stores = server.running.storage.stores;
      const roomId = await roomWith(6);
      const latest = (await stores.rooms.selectCurrentStreamPosition()) + 1;
      const purgeId = `leased${Date.now()}`;
      await stores.roomPurges.insertPurge({
        purgeId,
        kind: 'purge_history',
        roomId,
        requester: alice.userId,
        params: JSON.stringify({ before: latest, deleteLocalEvents: true }),
        status: 'active',
        error: null,
        result: null,
        createdTs: Date.now(),
      });
      // The process that was running it died holding the lease, for a while more.
      const now = Date.now();
      assert.ok(
        await stores.moderation.takeLease(`purge:${purgeId}`, 'dead', now, now + JOB_LEASE_MS),
      );

      // A second worker starts (and resumes unfinished purges at start-up); the first
      // resumes them too: neither runs this one.
      worker = await startWorker({
        COMMONS_DATA_DIR: dataDir,
        COMMONS_DATABASE_URL: database.url,
        COMMONS_LISTEN_HOST: '127.0.0.1',
        COMMONS_LISTEN_PORT: '0',
        COMMONS_SERVER_NAME: 'test.local',
        COMMONS_RATE_LIMITS_ENABLED: 'false',
      });
      const versions = await fetch(`${worker.url}/_matrix/client/versions`);
      assert.equal(versions.status, 200);
      await server.running.services.admin.purges.resumePending();
      assert.equal((await stores.roomPurges.selectPurge(purgeId))?.status, 'active');
      assert.equal(await messageCount(roomId), 6);

      // Once the lease has run out (here: set to have run out), the next resumption takes it
      // up and finishes it. That may be the second worker's: its start-up resumption can run
      // late on a busy machine, take the lease first, and leave this one nothing to do.
      assert.ok(await stores.moderation.takeLease(`purge:${purgeId}`, 'dead', now, now - 1));
      await server.running.services.admin.purges.resumePending();
      const finished = await eventually(
        () => stores.roomPurges.selectPurge(purgeId),
        (purge) => purge?.status !== 'active',
        60_000,
      );
      assert.equal(finished?.status, 'complete');
      assert.equal(await messageCount(roomId), 1);
      // Released at the end.
      assert.equal(
        await stores.moderation.takeLease(
          `purge:${purgeId}`,
          'another',
          Date.now(),
          Date.now() + 1000,
        ),
        true,
      );
    });

    it('of two processes racing for a lease, one gets it; the holder renews it', async () => {
      const stores = server.running.storage.stores;
      const job = `race${Date.now()}`;
      const now = Date.now();
      const results = await Promise.all(
        ['one', 'two', 'three', 'four'].map((owner) =>
          stores.moderation.takeLease(job, owner, now, now + JOB_LEASE_MS),
        ),
      );
      assert.equal(results.filter(Boolean).length, 1, JSON.stringify(results));
      const holder = ['one', 'two', 'three', 'four'][results.indexOf(true)] as string;
      assert.equal(
        await stores.moderation.takeLease(job, holder, now + 1, now + JOB_LEASE_MS + 1),
        true,
      );
      assert.equal(await stores.moderation.takeLease(job, 'late', now + 2, now + 10), false);
    });

    it('a retention pass is skipped while another process holds its lease', async () => {
      const stores = server.running.storage.stores;
      const roomId = await roomWith(4);
      const later = servicesOf(server, () => Date.now() + 2 * DAY_MS);
      const now = Date.now() + 2 * DAY_MS;
      assert.ok(await stores.moderation.takeLease('retention', 'other-process', now, now + 60_000));
      assert.equal(await later.admin.retention.runOnce(), 0);
      assert.equal(await messageCount(roomId), 4);
      await stores.moderation.releaseLease('retention', 'other-process');
      assert.ok((await later.admin.retention.runOnce()) >= 3);
      assert.equal(await messageCount(roomId), 1);
    });
  },
);
