/**
 * The example graphs of the state resolution v2 proposal (MSC1442), which every
 * implementation tests against: a room of Alice (100), Bob, Charlie and Zara, a fork between
 * START and END, and the state expected at END. Played for room versions 10, 11 and 12 (in
 * version 12 Alice, the creator, is left out of the power levels' `users`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { JsonObject, RoomVersionId } from '../../src/core/pdu.js';
import { resolveState } from '../../src/core/state-resolution/index.js';
import { ALICE, BOB, TestDag, playGraph, type GraphNode } from '../fixtures/state-dag.js';

const CHARLIE = '@charlie:c.test';
const ZARA = '@zara:z.test';
const EVELYN = '@evelyn:e.test';
const JOIN: JsonObject = { membership: 'join' };

const pl = (id: string, sender: string, users: JsonObject, extra: JsonObject = {}): GraphNode => ({
  id,
  sender,
  type: 'm.room.power_levels',
  stateKey: '',
  content: { users, ...extra },
});
const topic = (id: string, sender: string): GraphNode => ({
  id,
  sender,
  type: 'm.room.topic',
  stateKey: '',
  content: {},
});
const member = (id: string, sender: string, target: string, membership: string): GraphNode => ({
  id,
  sender,
  type: 'm.room.member',
  stateKey: target,
  content: { membership },
});

const INITIAL: readonly GraphNode[] = [
  { id: 'CREATE', sender: ALICE, type: 'm.room.create', stateKey: '', content: {} },
  member('IMA', ALICE, ALICE, 'join'),
  pl('IPOWER', ALICE, { [ALICE]: 100 }),
  {
    id: 'IJR',
    sender: ALICE,
    type: 'm.room.join_rules',
    stateKey: '',
    content: { join_rule: 'public' },
  },
  { id: 'IMB', sender: BOB, type: 'm.room.member', stateKey: BOB, content: JOIN },
  { id: 'IMC', sender: CHARLIE, type: 'm.room.member', stateKey: CHARLIE, content: JOIN },
  { id: 'IMZ', sender: ZARA, type: 'm.room.member', stateKey: ZARA, content: JOIN },
  { id: 'START', sender: ZARA, type: 'm.room.message', content: {} },
  { id: 'END', sender: ZARA, type: 'm.room.message', content: {} },
];
const INITIAL_EDGES = ['START', 'IMZ', 'IMC', 'IMB', 'IJR', 'IPOWER', 'IMA', 'CREATE'];

/** The graph's events for a room version: its create content, no creator in v12 `users`. */
function forVersion(nodes: readonly GraphNode[], version: RoomVersionId): GraphNode[] {
  return nodes.map((node) => {
    if (node.type === 'm.room.create') {
      return {
        ...node,
        content: { room_version: version, ...(version === '10' ? { creator: ALICE } : {}) },
      };
    }
    if (node.type === 'm.room.power_levels' && version === '12') {
      const users = { ...(node.content?.['users'] as JsonObject) };
      delete users[ALICE];
      return { ...node, content: { ...node.content, users } };
    }
    return node;
  });
}

interface GraphCase {
  readonly name: string;
  readonly events: readonly GraphNode[];
  readonly edges: readonly (readonly string[])[];
  /** Node IDs of the state at END, leaving out keys unchanged since START. */
  readonly expected: readonly string[];
}

const CASES: readonly GraphCase[] = [
  {
    name: 'ban vs power levels',
    events: [
      pl('PA', ALICE, { [ALICE]: 100, [BOB]: 50 }),
      member('MA', ALICE, ALICE, 'join'),
      member('MB', ALICE, BOB, 'ban'),
      pl('PB', BOB, { [ALICE]: 100, [BOB]: 50 }),
    ],
    edges: [
      ['END', 'MB', 'MA', 'PA', 'START'],
      ['END', 'PB', 'PA'],
    ],
    expected: ['PA', 'MA', 'MB'],
  },
  {
    name: 'join rule evasion',
    events: [
      {
        id: 'JR',
        sender: ALICE,
        type: 'm.room.join_rules',
        stateKey: '',
        content: { join_rules: 'private' },
      },
      member('ME', EVELYN, EVELYN, 'join'),
    ],
    edges: [
      ['END', 'JR', 'START'],
      ['END', 'ME', 'START'],
    ],
    expected: ['JR'],
  },
  {
    name: 'off-topic power levels',
    events: [
      pl('PA', ALICE, { [ALICE]: 100, [BOB]: 50 }),
      pl('PB', BOB, { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50 }),
      pl('PC', CHARLIE, { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 0 }),
    ],
    edges: [
      ['END', 'PC', 'PB', 'PA', 'START'],
      ['END', 'PA'],
    ],
    expected: ['PC'],
  },
  {
    name: 'topic basic',
    events: [
      topic('T1', ALICE),
      pl('PA1', ALICE, { [ALICE]: 100, [BOB]: 50 }),
      topic('T2', ALICE),
      pl('PA2', ALICE, { [ALICE]: 100, [BOB]: 0 }),
      pl('PB', BOB, { [ALICE]: 100, [BOB]: 50 }),
      topic('T3', BOB),
    ],
    edges: [
      ['END', 'PA2', 'T2', 'PA1', 'T1', 'START'],
      ['END', 'T3', 'PB', 'PA1'],
    ],
    expected: ['PA2', 'T2'],
  },
  {
    name: 'topic reset',
    events: [
      topic('T1', ALICE),
      pl('PA', ALICE, { [ALICE]: 100, [BOB]: 50 }),
      topic('T2', BOB),
      member('MB', ALICE, BOB, 'ban'),
    ],
    edges: [
      ['END', 'MB', 'T2', 'PA', 'T1', 'START'],
      ['END', 'T1'],
    ],
    expected: ['T1', 'MB', 'PA'],
  },
  {
    name: 'topic',
    events: [
      topic('T1', ALICE),
      pl('PA1', ALICE, { [ALICE]: 100, [BOB]: 50 }),
      topic('T2', ALICE),
      pl('PA2', ALICE, { [ALICE]: 100, [BOB]: 0 }),
      pl('PB', BOB, { [ALICE]: 100, [BOB]: 50 }),
      topic('T3', BOB),
      { id: 'MZ1', sender: ZARA, type: 'm.room.message', content: {} },
      topic('T4', ALICE),
    ],
    edges: [
      ['END', 'T4', 'MZ1', 'PA2', 'T2', 'PA1', 'T1', 'START'],
      ['END', 'MZ1', 'T3', 'PB', 'PA1'],
    ],
    expected: ['T4', 'PA2'],
  },
  {
    name: 'mainline sort',
    events: [
      topic('T1', ALICE),
      pl('PA1', ALICE, { [ALICE]: 100, [BOB]: 50 }),
      topic('T2', ALICE),
      pl('PA2', ALICE, { [ALICE]: 100, [BOB]: 50 }, { events: { 'm.room.power_levels': 100 } }),
      pl('PB', BOB, { [ALICE]: 100, [BOB]: 50 }),
      topic('T3', BOB),
      topic('T4', ALICE),
    ],
    edges: [
      ['END', 'T3', 'PA2', 'T2', 'PA1', 'T1', 'START'],
      ['END', 'T4', 'PB', 'PA1'],
    ],
    // T3 wins: T4 is later but cites older power levels.
    expected: ['T3', 'PA2'],
  },
];

describe('state resolution: the MSC1442 example graphs', () => {
  for (const c of CASES) {
    for (const version of ['10', '11', '12'] as const) {
      it(`${c.name} [v${version}]`, () => {
        const dag = new TestDag(version, '$CREATE');
        const nodes = forVersion([...INITIAL, ...c.events], version);
        const states = playGraph(dag, nodes, [INITIAL_EDGES, ...c.edges], (sets) =>
          resolveState(version, sets, dag.lookup),
        );
        const start = states.get('START') as ReadonlyMap<string, string>;
        const end = states.get('END') as ReadonlyMap<string, string>;
        const expectedIds = new Set(c.expected.map((id) => `$${id}`));
        const expectedKeys = new Set<string>();
        for (const [key, eventId] of end) if (expectedIds.has(eventId)) expectedKeys.add(key);
        const changed: Record<string, string> = {};
        for (const [key, eventId] of end) {
          if (expectedKeys.has(key) || start.get(key) !== eventId) {
            changed[key.replace('\u0000', '|')] = eventId.slice(1);
          }
        }
        assert.deepEqual(Object.values(changed).sort(), [...c.expected].sort());
      });
    }
  }
});
