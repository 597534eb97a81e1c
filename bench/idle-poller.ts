/**
 * A child process of the idle-clients scenario (bench/idle-clients.ts): holds one /sync
 * long-poll open for each user it is given, as an idle client does — an initial sync, then
 * long-polls with the token it returned, each followed by the next at once. Driven over IPC:
 * `start` connects them (a bounded number at a time), `stop` closes every socket and reports.
 */
import { Agent, request } from 'node:http';

export interface PollerStart {
  type: 'start';
  /** A user's polls go to urls[index % urls.length]. */
  urls: string[];
  tokens: string[];
  /** Offset of this poller's users among all the idle users (for spreading over urls). */
  offset: number;
  pollTimeoutMs: number;
  /** Initial syncs in flight at once while connecting. */
  connectConcurrency: number;
}

export interface PollerStats {
  type: 'stats';
  /** Users holding a long-poll. */
  connected: number;
  /** Long-polls answered (a timeout or a change) after the first. */
  answered: number;
  /** Long-polls answered well before their timeout (woken by a change). */
  woken: number;
  errors: number;
  lastError?: string;
}

type Message = PollerStart | { type: 'stop' };

const agent = new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 100_000 });
let stopping = false;
const stats: PollerStats = { type: 'stats', connected: 0, answered: 0, woken: 0, errors: 0 };

function get(url: string, path: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path,
        agent,
        headers: { Authorization: `Bearer ${token}` },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function initialSync(url: string, token: string): Promise<string> {
  const res = await get(url, '/_matrix/client/v3/sync?timeout=0', token);
  if (res.status !== 200) throw new Error(`initial sync: HTTP ${res.status} ${res.body}`);
  return (JSON.parse(res.body) as { next_batch: string }).next_batch;
}

async function pollForever(url: string, token: string, since: string, timeoutMs: number) {
  let first = true;
  while (!stopping) {
    const started = Date.now();
    const pending = get(
      url,
      `/_matrix/client/v3/sync?timeout=${timeoutMs}&since=${encodeURIComponent(since)}`,
      token,
    );
    if (first) {
      first = false;
      stats.connected += 1;
    }
    try {
      const res = await pending;
      if (stopping) return;
      if (res.status !== 200) throw new Error(`HTTP ${res.status} ${res.body.slice(0, 200)}`);
      since = (JSON.parse(res.body) as { next_batch: string }).next_batch;
      stats.answered += 1;
      if (Date.now() - started < timeoutMs - 1000) stats.woken += 1;
    } catch (err) {
      if (stopping) return;
      stats.errors += 1;
      stats.lastError = (err as Error).message;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

async function start(message: PollerStart): Promise<void> {
  let next = 0;
  const connectOne = async (): Promise<void> => {
    while (!stopping && next < message.tokens.length) {
      const index = next++;
      const token = message.tokens[index] as string;
      const url = message.urls[(message.offset + index) % message.urls.length] as string;
      try {
        const since = await initialSync(url, token);
        void pollForever(url, token, since, message.pollTimeoutMs);
      } catch (err) {
        stats.errors += 1;
        stats.lastError = (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: message.connectConcurrency }, connectOne));
}

const report = setInterval(() => process.send?.(stats), 250);

process.on('message', (message: Message) => {
  if (message.type === 'start') {
    void start(message);
  } else if (message.type === 'stop') {
    stopping = true;
    agent.destroy();
    clearInterval(report);
    process.send?.(stats, () => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
