/**
 * `node --import tsx bench/big-room-build.ts [members] [slice]`: what a local join costs as a
 * room grows (issue #25). A Commons server builds a public room of `members` joined members
 * through the event writer (the path of every local event: auth, state groups, current state,
 * memberships), 250 joins a transaction, and prints the mean milliseconds per join for each
 * `slice` joins; then 100 users join it through the client API (`POST /join`, with every
 * event deriver), and the mean, median and slowest of those are printed.
 *
 * SQLite by default; `COMMONS_TEST_DATABASE_URL=postgres://…` for PostgreSQL.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createEventWriter } from '../src/services/event-writer.js';
import { registerUser } from '../test/helpers/client.js';
import { testDialects } from '../test/helpers/databases.js';
import { startTestServer } from '../test/helpers/server.js';
import { serviceContextOf } from '../test/helpers/services.js';

const members = Number(process.argv[2] ?? 20_000);
const slice = Number(process.argv[3] ?? 5_000);
const BATCH = 250;
const HTTP_JOINS = 100;
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

const dialect = testDialects().includes('postgres') ? 'postgres' : 'sqlite';
const server = await startTestServer(dialect);
console.log(`database ${dialect}, ${members} members, load average ${load()}`);
try {
  const owner = await registerUser(server, 'owner');
  const created = await server.request<{ room_id: string }>(
    'POST',
    '/_matrix/client/v3/createRoom',
    { token: owner.accessToken, body: { preset: 'public_chat', room_version: '11' } },
  );
  const roomId = created.body.room_id;
  const ctx = serviceContextOf(server);
  const writer = createEventWriter(ctx);
  const started = performance.now();
  let sliceStart = started;
  let inSlice = 0;
  for (let done = 1; done < members;) {
    const end = Math.min(done + BATCH, members);
    await ctx.storage.tx('bench-members', async (stores) => {
      await stores.rooms.lockRoom(roomId);
      for (let j = done; j < end; j++) {
        const user = `@member${j}:${ctx.settings.serverName}`;
        await writer.append(stores, roomId, {
          type: 'm.room.member',
          stateKey: user,
          sender: user,
          content: { membership: 'join', displayname: `Member ${j}` },
        });
      }
    });
    inSlice += end - done;
    done = end;
    if (inSlice >= slice || done === members) {
      const ms = (performance.now() - sliceStart) / inSlice;
      console.log(`members up to ${done}: ${ms.toFixed(2)} ms a join`);
      sliceStart = performance.now();
      inSlice = 0;
    }
  }
  console.log(`room built: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  // The client's kept-alive connection may have been closed during the build: a request
  // that fails to get an answer is sent once more.
  const again = async <T>(send: () => Promise<T>): Promise<T> => {
    try {
      return await send();
    } catch {
      return send();
    }
  };
  const times: number[] = [];
  for (let i = 0; i < HTTP_JOINS; i++) {
    const user = await again(() => registerUser(server, `joiner${i}`));
    const at = performance.now();
    const joined = await server.request(
      'POST',
      `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`,
      { token: user.accessToken, body: {} },
    );
    if (joined.status !== 200) throw new Error(`join: ${JSON.stringify(joined.body)}`);
    times.push(performance.now() - at);
  }
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  times.sort((a, b) => a - b);
  console.log(
    `POST /join into the room of ${members}: mean ${mean.toFixed(1)} ms, median ${times[HTTP_JOINS / 2]!.toFixed(1)} ms, slowest ${times.at(-1)!.toFixed(1)} ms (${HTTP_JOINS} joins)`,
  );
} finally {
  console.log(`load average at the end ${load()}`);
  await server.close();
}
