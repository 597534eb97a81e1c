/**
 * `npm run bench:sliding-sync -- [--rooms 10000] [--db postgres://…]`: one user in N rooms
 * (each with one other member and a message), then, through HTTP against one Commons:
 * simplified sliding sync's first answer for a 20-room window and its incremental answer after
 * one new message, beside classic /sync's initial answer (lazy-loading members, one timeline
 * event per room) and its incremental answer after one message. Medians of 5 runs (min–max).
 * Not part of `npm run bench`; prints a Markdown table for docs/benchmarks.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../src/config/load.js';
import { loadServerSecrets } from '../src/config/server-secrets.js';
import { startServer } from '../src/main.js';
import type { Requester } from '../src/services/index.js';
import { batchingServices, SERVER_NAME } from './generate.js';

const SS = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';
const RUNS = 5;

function option(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}

const rooms = Number(option('rooms', '10000'));
const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-ss-bench-'));
const url = option('db', `sqlite:${path.join(dataDir, 'commons.db')}`);
const uid = (localpart: string) => `@${localpart}:${SERVER_NAME}`;
const requester = (userId: string): Requester => ({ userId, deviceId: 'BENCH', isAdmin: false });

const config = loadConfig({
  env: {
    COMMONS_DATA_DIR: dataDir,
    COMMONS_DATABASE_URL: url,
    COMMONS_LISTEN_HOST: '127.0.0.1',
    COMMONS_LISTEN_PORT: '0',
    COMMONS_SERVER_NAME: SERVER_NAME,
    COMMONS_RATE_LIMITS_ENABLED: 'false',
    COMMONS_LOG_LEVEL: 'warn',
  },
});
const running = await startServer(config, { logger: pino({ level: 'warn' }) });
try {
  const { services, batch } = batchingServices(
    running.storage,
    loadServerSecrets(dataDir).signingKey,
    async () => undefined,
  );
  const me = uid('busy');
  const other = uid('friend');
  const started = performance.now();
  await batch('ssBenchUsers', async (stores) => {
    for (const userId of [me, other])
      await stores.accounts.insertUser({
        userId,
        localpart: userId.slice(1, userId.indexOf(':')),
        passwordHash: null,
        isAdmin: false,
        displayname: userId,
        createdTs: Date.now(),
      });
  });
  const token = (
    await services.accounts.issueLogin(me, { deviceId: 'BENCH', displayName: 'bench', ip: null })
  ).accessToken;
  const roomIds: string[] = [];
  for (let start = 0; start < rooms; start += 100) {
    await batch('ssBenchRooms', async () => {
      for (let i = start; i < Math.min(rooms, start + 100); i++) {
        const { roomId } = await services.rooms.createRoom(requester(other), {
          preset: 'public_chat',
          ...(i % 2 === 0 ? { name: `room ${i}` } : {}),
        });
        await services.membership.join(requester(me), roomId);
        await services.roomEvents.sendMessage(requester(other), roomId, 'm.room.message', `t${i}`, {
          msgtype: 'm.text',
          body: `hello ${i}`,
        });
        roomIds.push(roomId);
      }
    });
    if (start % 1000 === 0) console.error(`built ${start} rooms`);
  }
  console.error(`built ${rooms} rooms in ${Math.round((performance.now() - started) / 1000)} s`);

  async function call(method: string, urlPath: string, body?: unknown) {
    const t0 = performance.now();
    const response = await fetch(running.url + urlPath, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    const ms = performance.now() - t0;
    if (response.status !== 200) throw new Error(`${urlPath}: ${response.status} ${text}`);
    return { ms, bytes: text.length, json: JSON.parse(text) as Record<string, unknown> };
  }
  let n = 0;
  const say = async () =>
    services.roomEvents.sendMessage(
      requester(other),
      roomIds[n % roomIds.length] as string,
      'm.room.message',
      `x${++n}`,
      {
        msgtype: 'm.text',
        body: `news ${n}`,
      },
    );
  const window = (connId: string) => ({
    conn_id: connId,
    lists: {
      all: {
        ranges: [[0, 19]],
        timeline_limit: 1,
        required_state: [
          ['m.room.create', ''],
          ['m.room.name', ''],
          ['m.room.avatar', ''],
          ['m.room.encryption', ''],
          ['m.room.member', '$LAZY'],
          ['m.room.member', '$ME'],
          ['m.room.power_levels', ''],
        ],
      },
    },
  });
  const filter = encodeURIComponent(
    JSON.stringify({ room: { timeline: { limit: 1 }, state: { lazy_load_members: true } } }),
  );
  const rows: [string, number[], number][] = [];
  const measure = async (
    name: string,
    once: (i: number) => Promise<{ ms: number; bytes: number }>,
  ) => {
    const times: number[] = [];
    let bytes = 0;
    for (let i = 0; i < RUNS; i++) {
      const result = await once(i);
      times.push(result.ms);
      bytes = result.bytes;
    }
    rows.push([name, times.sort((a, b) => a - b), bytes]);
  };
  await measure('sliding sync, first answer, 20-room window', (i) =>
    call('POST', SS, window(`first${i}`)),
  );
  await measure('sliding sync, incremental after one message', async (i) => {
    const first = await call('POST', SS, window(`inc${i}`));
    await say();
    return call('POST', `${SS}?pos=${String(first.json.pos)}`, window(`inc${i}`));
  });
  await measure('/sync, initial (lazy members, 1 event per room)', () =>
    call('GET', `/_matrix/client/v3/sync?filter=${filter}`),
  );
  await measure('/sync, incremental after one message', async () => {
    const first = await call('GET', `/_matrix/client/v3/sync?filter=${filter}`);
    await say();
    return call(
      'GET',
      `/_matrix/client/v3/sync?filter=${filter}&since=${String(first.json.next_batch)}`,
    );
  });
  const fmt = (ms: number) => ms.toFixed(1);
  console.log(`| ${rooms} rooms, ${running.storage.dialect} | ms median (min–max) | bytes |`);
  console.log('| --- | --- | --- |');
  for (const [name, times, bytes] of rows)
    console.log(
      `| ${name} | ${fmt(times[2] as number)} (${fmt(times[0] as number)}–${fmt(times[4] as number)}) | ${bytes} |`,
    );
} finally {
  await running.close();
  rmSync(dataDir, { recursive: true, force: true });
}
