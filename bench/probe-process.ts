/**
 * The event-loop probe as its own process: another client polling a trivial endpoint
 * (`/versions`) on its own connection while the bench process downloads a big response. In the
 * bench process itself, the probe's timings also held that process's own work on the download
 * (tens of megabytes of chunks, their concatenation, its garbage collection): 128–170 ms
 * "delays" while a lag monitor inside the server saw no gap over 40 ms.
 *
 * Protocol (IPC, from bench/scenarios.ts): 'start' begins polling; 'stop' ends it and answers
 * `{ worstMs, probes }` over the probes sent before the stop (one stuck behind a blocked event
 * loop counts even when it completes afterwards). Usage: forked with `<base url>`.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { httpClient } from './http.js';

export interface ProbeReport {
  worstMs: number;
  probes: number;
}

const base = process.argv[2];
if (!base || !process.send) {
  process.stderr.write('usage: forked by the bench with <base url>\n');
  process.exit(2);
}
const client = httpClient(base, 1);
let running = false;
let loop: Promise<ProbeReport> | null = null;

async function poll(): Promise<ProbeReport> {
  const report: ProbeReport = { worstMs: 0, probes: 0 };
  while (running) {
    const res = await client.get('/_matrix/client/versions').catch(() => undefined);
    if (res) {
      report.worstMs = Math.max(report.worstMs, res.ms);
      report.probes += 1;
    }
    if (running) await delay(2);
  }
  return report;
}

process.on('message', (message: unknown) => {
  if (message === 'start' && !running) {
    running = true;
    loop = poll();
  } else if (message === 'stop') {
    running = false;
    void (loop ?? Promise.resolve({ worstMs: 0, probes: 0 })).then((report) =>
      process.send?.(report),
    );
    loop = null;
  }
});
process.on('disconnect', () => {
  client.close();
  process.exit(0);
});
