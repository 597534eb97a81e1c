/**
 * `node --import tsx bench/remote-members.ts [members] [runs]`: the big room's member-list
 * queries when its members are users of other servers (issue #25).
 *
 * Two public rooms of `members` joined members each, built through the event writer in the
 * same run: one of local users, one of users spread over 10 other servers (`@m7:s7.example`),
 * every member with a display name and an avatar in their member event. For each room:
 * `/members`, `/members?membership=join`, `/joined_members` and `/members?at=` (a token taken
 * when half had joined), each asked `runs` times after a member event in the room (so no kept
 * body answers it: the read path itself); and `/v1/mutual_rooms` about a local member and
 * about a remote one. Medians and 95th percentiles in ms, with the load average.
 *
 * SQLite by default; `COMMONS_TEST_DATABASE_URL=postgres://…` for PostgreSQL. The rooms'
 * members are written as the room DAG keeps any member (the read path does not depend on
 * where a member event came from); federation is off so that no outbox fills up for the ten
 * servers that do not exist.
 */
import { performance } from 'node:perf_hooks';
import { loadavg } from 'node:os';
import { createEventWriter } from '../src/services/event-writer.js';
import { registerUser } from '../test/helpers/client.js';
import { testDialects } from '../test/helpers/databases.js';
import { startTestServer } from '../test/helpers/server.js';
import { serviceContextOf } from '../test/helpers/services.js';

const members = Number(process.argv[2] ?? 5_000);
const runs = Number(process.argv[3] ?? 15);
const SERVERS = 10;
const BATCH = 250;
const enc = encodeURIComponent;

function stats(values: number[]): { median: number; p95: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { median: at(0.5), p95: at(0.95) };
}

async function main(): Promise<void> {
  const dialect = testDialects().includes('postgres') ? 'postgres' : 'sqlite';
  const server = await startTestServer(dialect, { COMMONS_MUTUAL_ROOMS_BATCH_SIZE: '100' });
  const load = loadavg()[0]?.toFixed(1);
  console.log(`database ${dialect}, ${members} members per room, ${runs} runs, load ${load}`);
  try {
    const owner = await registerUser(server, 'owner');
    // A request again when its kept-alive connection was closed meanwhile (ECONNRESET after a
    // long build without requests).
    const as = async <T = Record<string, unknown>>(
      method: string,
      path: string,
      body?: unknown,
    ) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await server.request<T>(method, path, {
            token: owner.accessToken,
            ...(body !== undefined ? { body } : {}),
          });
        } catch (err) {
          if (attempt >= 3) throw err;
        }
      }
    };
    const createRoom = async () =>
      (
        await as<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', {
          preset: 'public_chat',
        })
      ).body.room_id;
    const rooms = { local: await createRoom(), remote: await createRoom() };
    const memberId = (kind: 'local' | 'remote', j: number) =>
      kind === 'local' ? `@m${j}:${server.config.server_name}` : `@m${j}:s${j % SERVERS}.example`;

    const ctx = serviceContextOf(server);
    const writer = createEventWriter(ctx);
    const tokens: Record<string, string> = {};
    for (const kind of ['local', 'remote'] as const) {
      const roomId = rooms[kind];
      const started = performance.now();
      for (let i = 0; i < members - 1; i += BATCH) {
        if (i >= (members - 1) / 2 && tokens[kind] === undefined) {
          const sync = await as<{ next_batch: string }>(
            'GET',
            `/_matrix/client/v3/sync?timeout=0&filter=${enc(JSON.stringify({ room: { rooms: [] } }))}`,
          );
          tokens[kind] = sync.body.next_batch;
        }
        await ctx.storage.tx('bench-members', async (stores) => {
          await stores.rooms.lockRoom(roomId);
          for (let j = i; j < Math.min(i + BATCH, members - 1); j++) {
            const user = memberId(kind, j);
            await writer.append(stores, roomId, {
              type: 'm.room.member',
              stateKey: user,
              sender: user,
              content: {
                membership: 'join',
                displayname: `Member ${j}`,
                avatar_url: `mxc://s${j % SERVERS}.example/avatar${j}`,
              },
            });
          }
        });
      }
      console.log(`${kind} room built: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }

    const rows: string[] = [];
    let bump = 0;
    for (const [name, path] of [
      ['/members', (room: string) => `/rooms/${enc(room)}/members`],
      ['/members?membership=join', (room: string) => `/rooms/${enc(room)}/members?membership=join`],
      ['/joined_members', (room: string) => `/rooms/${enc(room)}/joined_members`],
      [
        '/members?at= (half joined)',
        (room: string, kind: 'local' | 'remote') =>
          `/rooms/${enc(room)}/members?at=${enc(tokens[kind] ?? '')}`,
      ],
    ] as const) {
      const cells: string[] = [];
      for (const kind of ['local', 'remote'] as const) {
        const roomId = rooms[kind];
        const times: number[] = [];
        let size = 0;
        for (let run = 0; run < runs; run++) {
          // A member event in the room first: no kept body answers the request.
          await as(
            'PUT',
            `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(owner.userId)}`,
            { membership: 'join', displayname: `owner ${++bump}` },
          );
          const t0 = performance.now();
          const answer = await as<{ chunk?: unknown[]; joined?: Record<string, unknown> }>(
            'GET',
            `/_matrix/client/v3${path(roomId, kind)}`,
          );
          times.push(performance.now() - t0);
          if (answer.status !== 200) throw new Error(`${name}: HTTP ${answer.status}`);
          size = answer.body.chunk?.length ?? Object.keys(answer.body.joined ?? {}).length;
        }
        const s = stats(times);
        cells.push(`${s.median.toFixed(1)} / ${s.p95.toFixed(1)} (${size})`);
      }
      rows.push(`| ${name} | ${cells.join(' | ')} |`);
    }
    // Mutual rooms about a local and a remote member (one room shared), the pair built first.
    const mutualCells: string[] = [];
    for (const kind of ['local', 'remote'] as const) {
      const other = memberId(kind, 7);
      const times: number[] = [];
      await as('GET', `/_matrix/client/v1/mutual_rooms?user_id=${enc(other)}`);
      for (let run = 0; run < runs; run++) {
        const t0 = performance.now();
        const answer = await as<{ joined: string[] }>(
          'GET',
          `/_matrix/client/v1/mutual_rooms?user_id=${enc(other)}`,
        );
        times.push(performance.now() - t0);
        if (answer.status !== 200 || answer.body.joined.length !== 1)
          throw new Error(`mutual_rooms: ${JSON.stringify(answer.body)}`);
      }
      const s = stats(times);
      mutualCells.push(`${s.median.toFixed(1)} / ${s.p95.toFixed(1)} (1)`);
    }
    rows.push(`| /v1/mutual_rooms (a member) | ${mutualCells.join(' | ')} |`);
    console.log(
      `\n| request | local members: median / p95 ms (items) | members of ${SERVERS} other servers |`,
    );
    console.log('| --- | --- | --- |');
    for (const row of rows) console.log(row);
  } finally {
    await server.close();
  }
}

await main();
