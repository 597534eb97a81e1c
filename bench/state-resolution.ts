/**
 * `node --import tsx bench/state-resolution.ts [members]`: the cost of state resolution
 * (pure CPU, no database) in a room of many members, for the forks federation meets most —
 * a few conflicted keys — and a large one. Each figure is the median of 7 runs after 2
 * warm-ups, for room versions 11 (v2) and 12 (v2.1).
 */
import { performance } from 'node:perf_hooks';

import type { RoomVersionId } from '../src/core/pdu.js';
import { resolveState } from '../src/core/state-resolution/index.js';
import { ALICE, BOB, TestDag, type State } from '../test/fixtures/state-dag.js';

const members = Number(process.argv[2] ?? 10_000);

interface Scenario {
  readonly name: string;
  readonly build: (dag: TestDag, base: State) => State[];
}

const SCENARIOS: readonly Scenario[] = [
  {
    name: 'a topic and a power level change on two sides',
    build: (dag, base) => [
      dag.send(base, {
        id: '$topic',
        type: 'm.room.topic',
        sender: BOB,
        stateKey: '',
        content: { topic: 't' },
      }),
      dag.powerLevels(base, '$pl-fork', ALICE, { [BOB]: 50, '@user1:m.test': 10 }),
    ],
  },
  {
    name: '1,000 joins against a change of join rules',
    build: (dag, base) => {
      let joins: State = base;
      for (let i = 0; i < 1000; i += 1) {
        const user = `@late${i}:m.test`;
        joins = dag.member(joins, `$late-${i}`, user, user, 'join');
      }
      const closed = dag.send(base, {
        id: '$jr-invite',
        type: 'm.room.join_rules',
        sender: ALICE,
        stateKey: '',
        content: { join_rule: 'invite' },
      });
      return [joins, closed];
    },
  },
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

for (const version of ['11', '12'] as RoomVersionId[]) {
  for (const scenario of SCENARIOS) {
    const dag = new TestDag(version);
    let base: State = dag.createRoom();
    for (let i = 0; i < members; i += 1) {
      const user = `@user${i}:m.test`;
      base = dag.member(base, `$join-${i}`, user, user, 'join');
    }
    const states = scenario.build(dag, base);
    const times: number[] = [];
    for (let run = 0; run < 9; run += 1) {
      const started = performance.now();
      resolveState(version, states, dag.lookup);
      if (run >= 2) times.push(performance.now() - started);
    }
    console.log(
      `v${version} ${members} members, ${scenario.name}: median ${median(times).toFixed(1)} ms ` +
        `(min ${Math.min(...times).toFixed(1)}, max ${Math.max(...times).toFixed(1)})`,
    );
  }
}
