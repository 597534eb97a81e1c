/**
 * A bridge on mautrix-python (PyPI; a test peer nobody here wrote), test/clients/mautrix/
 * bridge.py, against a listening Commons: the framework registers its bot and a ghost through
 * the appservice API, gives the ghost a device (MSC4190), sends as the ghost with a massaged
 * timestamp and reads /joined_members; it receives in transactions a human's message, typing
 * (MSC2409 ephemeral events), a to-device message (MSC2409) and its ghost's one-time key
 * counts (MSC3202).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { writeRegistrations } from '../helpers/appservice.js';
import { MAUTRIX, MAUTRIX_PYTHON, skipUnless } from '../helpers/requirements.js';

const V3 = '/_matrix/client/v3';
const r = encodeURIComponent;
const SCRIPT = fileURLToPath(new URL('./mautrix/bridge.py', import.meta.url));
const AS_TOKEN = 'as_mautrix_0123456789';
const HS_TOKEN = 'hs_mautrix_0123456789';
const GHOST = '@_mx_ghost:test.local';
const TS = 1_500_000_000_000;

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

type Line = Record<string, unknown>;

forEachDatabase(
  'a mautrix-python bridge on Commons',
  (dialect) => {
    let server: TestServer;
    let human: TestUser;
    let child: ChildProcess;
    let stderr = '';
    const lines: Line[] = [];
    const waiters: (() => void)[] = [];

    /** The first line with this key the bridge printed (waits for it). */
    const line = async (key: string, timeoutMs = 60_000): Promise<Line> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = lines.find((l) => key in l);
        if (found) return found;
        if (child.exitCode !== null)
          throw new Error(`the bridge exited (${child.exitCode}) before "${key}": ${stderr}`);
        if (Date.now() > deadline) throw new Error(`no "${key}" from the bridge: ${stderr}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 500);
        });
      }
    };

    before(async () => {
      const port = await freePort();
      server = await startTestServer(dialect, {
        COMMONS_APP_SERVICES_CONFIG_FILES: writeRegistrations([
          {
            id: 'mautrix',
            url: `http://127.0.0.1:${port}`,
            as_token: AS_TOKEN,
            hs_token: HS_TOKEN,
            sender_localpart: 'mxbot',
            namespaces: { users: [{ exclusive: true, regex: '@_mx_.*:test\\.local' }] },
            rate_limited: false,
            'de.sorunome.msc2409.push_ephemeral': true,
            receive_ephemeral: true,
            'org.matrix.msc3202': true,
            'io.element.msc4190': true,
          },
        ]),
        COMMONS_APP_SERVICES_RETRY_MAX_SECONDS: '1',
      });
      human = await registerUser(server);
      child = spawn(MAUTRIX_PYTHON, [SCRIPT], {
        env: {
          ...process.env,
          HS_URL: server.url,
          AS_TOKEN,
          HS_TOKEN,
          PORT: String(port),
          HUMAN: human.userId,
          TS: String(TS),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: path.dirname(SCRIPT),
      });
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
        try {
          lines.push(JSON.parse(text) as Line);
        } catch {
          stderr += `${text}\n`;
        }
        for (const wake of waiters.splice(0)) wake();
      });
    });
    after(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
      await server.close();
    });

    it('registers its bot and ghost, sends as the ghost with a massaged ts, reads the members', async () => {
      const ready = await line('room_id');
      const roomId = ready.room_id as string;
      assert.equal(ready.device, 'MXGHOST', 'the ghost acts as its MSC4190 device');
      assert.deepEqual(ready.members, ['@mxbot:test.local', GHOST].sort());
      const event = await server.request<{ sender: string; origin_server_ts: number }>(
        'GET',
        `${V3}/rooms/${r(roomId)}/event/${r(ready.event_id as string)}?user_id=${r(GHOST)}`,
        { token: AS_TOKEN },
      );
      assert.equal(event.status, 200, JSON.stringify(event.body));
      assert.equal(event.body.sender, GHOST);
      assert.equal(event.body.origin_server_ts, TS);
      const devices = await server.request<{ devices: { device_id: string }[] }>(
        'GET',
        `${V3}/devices?user_id=${r(GHOST)}`,
        { token: AS_TOKEN },
      );
      assert.deepEqual(
        devices.body.devices.map((d) => d.device_id),
        ['MXGHOST'],
      );
    });

    it('receives a message, typing, a to-device message and key counts in transactions', async () => {
      const roomId = (await line('room_id')).room_id as string;
      const joined = await server.request('POST', `${V3}/join/${r(roomId)}`, {
        token: human.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200);
      const typing = await server.request(
        'PUT',
        `${V3}/rooms/${r(roomId)}/typing/${r(human.userId)}`,
        { token: human.accessToken, body: { typing: true, timeout: 30_000 } },
      );
      assert.equal(typing.status, 200);
      const sent = await server.request('PUT', `${V3}/rooms/${r(roomId)}/send/m.room.message/mx1`, {
        token: human.accessToken,
        body: { msgtype: 'm.text', body: 'hello mautrix' },
      });
      assert.equal(sent.status, 200);
      const toDevice = await server.request('PUT', `${V3}/sendToDevice/m.test.ping/mx1`, {
        token: human.accessToken,
        body: { messages: { [GHOST]: { MXGHOST: { hello: 'ghost' } } } },
      });
      assert.equal(toDevice.status, 200);

      assert.equal((await line('message')).message, 'hello mautrix');
      assert.deepEqual((await line('typing')).typing, [human.userId]);
      assert.deepEqual((await line('to_device')).to_device, {
        sender: human.userId,
        type: 'm.test.ping',
        to: 'MXGHOST',
      });
      assert.deepEqual((await line('otk')).otk, { [GHOST]: { MXGHOST: 1 } });
      await line('done');
    });
  },
  { skip: skipUnless(MAUTRIX) },
);
