/**
 * Prometheus metrics on their own listener (metrics.enabled): requests by route pattern and
 * status (fast reads too), event-loop delay, the PostgreSQL pool, waiting /sync requests and
 * cache lookups.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';

const C = '/_matrix/client/v3';

/** The value of the sample `name{labels}` (labels as Prometheus writes them), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

forEachDatabase('metrics', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;
  let metricsUrl: string;

  const scrape = async () => {
    const response = await fetch(metricsUrl);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return response.text();
  };

  before(async () => {
    server = await startTestServer(dialect, {
      COMMONS_METRICS_ENABLED: 'true',
      COMMONS_METRICS_LISTEN_PORT: '0',
    });
    assert.ok(server.running.metricsUrl);
    metricsUrl = server.running.metricsUrl;
    alice = await registerUser(server);
    bob = await registerUser(server);
    const created = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: alice.accessToken,
      body: { preset: 'public_chat' },
    });
    roomId = created.body.room_id;
    await server.request('POST', `${C}/join/${encodeURIComponent(roomId)}`, {
      token: bob.accessToken,
      body: {},
    });
  });
  after(async () => server.close());

  it('are served on their own listener only, never on the client listener', async () => {
    assert.notEqual(new URL(metricsUrl).port, new URL(server.url).port);
    assert.equal((await fetch(`${server.url}/metrics`)).status, 404);
    assert.equal((await fetch(new URL('/other', metricsUrl))).status, 404);
  });

  it('count requests by route pattern and status, with latency buckets; never a raw URL', async () => {
    await server.request('GET', '/_matrix/client/versions');
    await server.request('GET', `${C}/rooms/${encodeURIComponent(roomId)}/joined_members`, {
      token: alice.accessToken,
    });
    await server.request('GET', `${C}/no/such/thing`);
    const text = await scrape();
    const versions =
      'commons_http_request_duration_seconds_count{method="GET",route="/_matrix/client/versions",status="200"}';
    assert.ok((sample(text, versions) ?? 0) >= 1, text);
    assert.ok(
      (sample(
        text,
        'commons_http_request_duration_seconds_count{method="GET",route="/_matrix/client/v3/rooms/:roomId/joined_members",status="200"}',
      ) ?? 0) >= 1,
      text,
    );
    assert.ok(
      (sample(
        text,
        'commons_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"}',
      ) ?? 0) >= 1,
      text,
    );
    assert.match(
      text,
      /^commons_http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/_matrix\/client\/versions",status="200"\} \d+$/m,
    );
    assert.ok(!text.includes(roomId), 'a room ID appears in the metrics');
    assert.ok(!text.includes('no/such/thing'), 'an unknown URL appears in the metrics');
  });

  it('count fast reads (mutual_rooms pages answered before Fastify) like other requests', async () => {
    const path = `/_matrix/client/v1/user/mutual_rooms?user_id=${encodeURIComponent(bob.userId)}`;
    for (let i = 0; i < 3; i++) {
      const response = await server.request('GET', path, { token: alice.accessToken });
      assert.equal(response.status, 200);
    }
    const text = await scrape();
    assert.ok(
      (sample(
        text,
        'commons_http_request_duration_seconds_count{method="GET",route="/_matrix/client/v1/user/mutual_rooms",status="200"}',
      ) ?? 0) >= 3,
      text,
    );
    // The repeated pages came from the page cache; the sessions from the session cache.
    assert.ok(
      (sample(text, 'commons_cache_lookups_total{cache="mutual_rooms_pages",result="hit"}') ?? 0) >=
        1,
      text,
    );
    assert.ok(
      (sample(text, 'commons_cache_lookups_total{cache="sessions",result="hit"}') ?? 0) >= 1,
      text,
    );
    assert.ok(
      sample(text, 'commons_cache_lookups_total{cache="sessions",result="miss"}') !== undefined,
    );
  });

  it('show waiting /sync requests, event-loop delay, the version, and the pool on PostgreSQL', async () => {
    const first = await server.request<{ next_batch: string }>('GET', `${C}/sync`, {
      token: bob.accessToken,
    });
    const waiting = server.request(
      'GET',
      `${C}/sync?since=${first.body.next_batch}&timeout=20000`,
      {
        token: bob.accessToken,
      },
    );
    const whileWaiting = await eventually(
      scrape,
      (text) => sample(text, 'commons_sync_waiting_requests') === 1,
    );
    assert.equal(sample(whileWaiting, 'commons_sync_waiting_requests'), 1);
    const sent = await server.request(
      'PUT',
      `${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`,
      {
        token: alice.accessToken,
        body: { msgtype: 'm.text', body: 'wake up' },
      },
    );
    assert.equal(sent.status, 200);
    assert.equal((await waiting).status, 200);
    const text = await scrape();
    assert.equal(sample(text, 'commons_sync_waiting_requests'), 0);
    assert.ok(sample(text, 'nodejs_eventloop_lag_p99_seconds') !== undefined, text);
    assert.ok(sample(text, 'nodejs_eventloop_lag_seconds') !== undefined, text);
    assert.match(text, /^commons_info\{version="[^"]+"\} 1$/m);
    assert.ok(
      sample(text, 'commons_cache_lookups_total{cache="lazy_members",result="miss"}') !== undefined,
    );
    // /joined_members twice: read and kept, then answered from what was kept.
    for (let i = 0; i < 2; i++) {
      const joined = await server.request(
        'GET',
        `${C}/rooms/${encodeURIComponent(roomId)}/joined_members`,
        { token: alice.accessToken },
      );
      assert.equal(joined.status, 200);
    }
    const counted = await scrape();
    const lookups = (result: string) =>
      sample(
        counted,
        `commons_cache_lookups_total{cache="joined_members_bodies",result="${result}"}`,
      );
    assert.ok((lookups('miss') ?? 0) >= 1, counted);
    assert.ok((lookups('hit') ?? 0) >= 1, counted);
    if (dialect === 'postgres') {
      assert.equal(sample(text, 'commons_db_pool_max'), 10);
      assert.ok((sample(text, 'commons_db_pool_connections{state="idle"}') ?? -1) >= 0, text);
      assert.ok(sample(text, 'commons_db_pool_connections{state="in_use"}') !== undefined);
      assert.equal(sample(text, 'commons_db_pool_waiting'), 0);
    } else {
      assert.equal(sample(text, 'commons_db_pool_max'), undefined);
    }
  });
});

forEachDatabase('metrics off (the default)', (dialect) => {
  it('no metrics listener, and /metrics is 404 on the client listener', async () => {
    const server = await startTestServer(dialect);
    try {
      assert.equal(server.running.metricsUrl, null);
      assert.equal((await fetch(`${server.url}/metrics`)).status, 404);
    } finally {
      await server.close();
    }
  });
});
