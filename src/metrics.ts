/**
 * Prometheus metrics (prom-client), served at `/metrics` on a listener of their own
 * (`metrics.listen`, off unless `metrics.enabled`), never on the client listener. What is
 * measured, and the names, are in docs/monitoring.md.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CacheStats } from './services/cache-stats.js';
import type { PoolStats } from './storage/index.js';

/** What the HTTP layer reports of each answered request. */
export interface RequestObserver {
  /** `route` is the route's pattern (`/_matrix/client/v3/rooms/:roomId/members`), never a URL. */
  observeRequest(method: string, route: string, status: number, seconds: number): void;
}

export interface MetricsSources {
  version: string;
  /** /sync requests waiting for something to happen. */
  waitingSyncs(): number;
  poolStats(): PoolStats | null;
  caches: CacheStats;
}

export interface Metrics extends RequestObserver {
  readonly registry: Registry;
  /** Listens on host:port; resolves with the address bound. */
  listen(host: string, port: number): Promise<string>;
  close(): Promise<void>;
}

/** Request latency buckets, in seconds (a long-polling /sync lasts up to its timeout). */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export function createMetrics(sources: MetricsSources): Metrics {
  const registry = new Registry();
  // process_* and nodejs_*: CPU, memory, GC, handles, and event-loop delay
  // (nodejs_eventloop_lag_seconds, nodejs_eventloop_lag_p50/p90/p99_seconds).
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });

  new Gauge({
    name: 'commons_info',
    help: 'Always 1; the version as a label.',
    labelNames: ['version'],
    registers: [registry],
  }).set({ version: sources.version }, 1);

  const requests = new Histogram({
    name: 'commons_http_request_duration_seconds',
    help: 'Answered HTTP requests by method, route pattern and status, with their latency (_count: requests).',
    labelNames: ['method', 'route', 'status'],
    buckets: BUCKETS,
    registers: [registry],
  });

  new Gauge({
    name: 'commons_sync_waiting_requests',
    help: '/sync requests waiting (long-polling) for something to happen.',
    registers: [registry],
    collect() {
      this.set(sources.waitingSyncs());
    },
  });

  const pool = () => sources.poolStats();
  // SQLite has no pool: these series are left out rather than shown as 0.
  if (pool() !== null) {
    new Gauge({
      name: 'commons_db_pool_connections',
      help: 'PostgreSQL pool connections, by state (idle, in_use). Absent on SQLite.',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const stats = pool();
        if (!stats) return;
        this.set({ state: 'idle' }, stats.idle);
        this.set({ state: 'in_use' }, stats.total - stats.idle);
      },
    });
    new Gauge({
      name: 'commons_db_pool_waiting',
      help: 'Queries waiting for a PostgreSQL pool connection. Absent on SQLite.',
      registers: [registry],
      collect() {
        const stats = pool();
        if (stats) this.set(stats.waiting);
      },
    });
    new Gauge({
      name: 'commons_db_pool_max',
      help: 'The PostgreSQL pool size (database.pool_size). Absent on SQLite.',
      registers: [registry],
      collect() {
        const stats = pool();
        if (stats) this.set(stats.max);
      },
    });
  }

  // The caches count in plain numbers (cheap on the hot path); this counter catches up with
  // them whenever it is scraped.
  const reported = new Map<string, { hits: number; misses: number }>();
  new Counter({
    name: 'commons_cache_lookups_total',
    help: 'Lookups in the per-process caches, by cache and result (hit, miss).',
    labelNames: ['cache', 'result'],
    registers: [registry],
    collect() {
      for (const [cache, counts] of sources.caches.caches) {
        const last = reported.get(cache) ?? { hits: 0, misses: 0 };
        this.inc({ cache, result: 'hit' }, counts.hits - last.hits);
        this.inc({ cache, result: 'miss' }, counts.misses - last.misses);
        reported.set(cache, { hits: counts.hits, misses: counts.misses });
      }
    },
  });

  let server: Server | null = null;
  return {
    registry,
    observeRequest(method, route, status, seconds) {
      requests.observe({ method, route, status }, seconds);
    },
    async listen(host, port) {
      const listener = createServer((request, response) => {
        const path = (request.url ?? '').split('?')[0];
        if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
          response
            .writeHead(404, { 'content-type': 'text/plain' })
            .end('not found: try /metrics\n');
          return;
        }
        registry.metrics().then(
          (text) => {
            response.writeHead(200, { 'content-type': registry.contentType });
            response.end(request.method === 'HEAD' ? undefined : text);
          },
          (err: unknown) => {
            response.writeHead(500, { 'content-type': 'text/plain' });
            response.end(`metrics failed: ${(err as Error).message}\n`);
          },
        );
      });
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen(port, host, () => {
          listener.off('error', reject);
          resolve();
        });
      });
      server = listener;
      const address = listener.address();
      const bound = typeof address === 'object' && address ? address.port : port;
      return `http://${host.includes(':') ? `[${host}]` : host}:${bound}/metrics`;
    },
    async close() {
      const listener = server;
      server = null;
      if (!listener) return;
      listener.closeAllConnections();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}
