// Loaded into the Commons process by the soak run (node --expose-gc --import
// bench/soak-agent.mjs): on SIGUSR2 it reads the command file SOAK_AGENT_DIR/command, then
// collects garbage ("gc"), writes a heap snapshot ("snapshot", which V8 takes after a full
// collection), starts V8's CPU profiler ("profile-start") or stops it and writes the profile
// to SOAK_AGENT_DIR/profile-<sequence>.cpuprofile ("profile-stop"), or does none of these (any
// other word: the peers bench reads memory as it is), and writes what it saw to
// SOAK_AGENT_DIR/reply-<sequence>.json.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import v8 from 'node:v8';

const dir = process.env.SOAK_AGENT_DIR;
if (dir) {
  let sequence = 0;
  let session;
  process.on('SIGUSR2', async () => {
    const command = readFileSync(path.join(dir, 'command'), 'utf8').trim();
    const reply = { sequence: ++sequence, command };
    if (command === 'profile-start') {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    } else if (command === 'profile-stop' && session) {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      session = undefined;
      reply.profile = path.join(dir, `profile-${sequence}.cpuprofile`);
      writeFileSync(reply.profile, JSON.stringify(profile));
    } else if (command === 'snapshot') {
      reply.snapshot = v8.writeHeapSnapshot(path.join(dir, `heap-${sequence}.heapsnapshot`));
    } else if (command === 'gc') {
      globalThis.gc?.();
    }
    Object.assign(reply, process.memoryUsage());
    const file = path.join(dir, `reply-${sequence}.json`);
    writeFileSync(`${file}.tmp`, JSON.stringify(reply));
    renameSync(`${file}.tmp`, file);
  });
}
