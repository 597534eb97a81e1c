/**
 * `diffStates` and `planStateDelta` (src/services/rooms-dag/state-groups.ts): which entries of
 * the current state a received event changed itself, and which state resolution changed —
 * replaced by another event or removed — so that each is derived again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stateKeyOf, type StateKey } from '../../src/core/pdu.js';
import { diffStates, planStateDelta } from '../../src/services/rooms-dag/state-groups.js';

const key = (type: string, stateKey = ''): StateKey => stateKeyOf(type, stateKey);
const state = (entries: ReadonlyArray<readonly [StateKey, string]>) => new Map(entries);

const BEFORE = state([
  [key('m.room.create'), '$create'],
  [key('m.room.join_rules'), '$public'],
  [key('m.room.topic'), '$topic2'],
  [key('m.room.member', '@eve:a'), '$eveJoin'],
]);

interface Case {
  name: string;
  after: Map<StateKey, string>;
  event: string;
  changes: Array<[StateKey, string | null]>;
  added: string[];
  replaced: string[];
}

const CASES: Case[] = [
  {
    name: 'a message: nothing changes',
    after: new Map(BEFORE),
    event: '$message',
    changes: [],
    added: [],
    replaced: [],
  },
  {
    name: 'the event replaces its own entry only',
    after: new Map([...BEFORE, [key('m.room.topic'), '$topic3']]),
    event: '$topic3',
    changes: [[key('m.room.topic'), '$topic3']],
    added: [],
    replaced: [],
  },
  {
    name: 'a join rule change removes a join that fails it',
    after: state([
      [key('m.room.create'), '$create'],
      [key('m.room.join_rules'), '$invite'],
      [key('m.room.topic'), '$topic2'],
    ]),
    event: '$invite',
    changes: [
      [key('m.room.join_rules'), '$invite'],
      [key('m.room.member', '@eve:a'), null],
    ],
    added: [],
    replaced: ['$eveJoin'],
  },
  {
    name: 'a demotion reverts the topic to an older event',
    after: new Map([
      ...BEFORE,
      [key('m.room.power_levels'), '$demote'],
      [key('m.room.topic'), '$topic1'],
    ]),
    event: '$demote',
    changes: [
      [key('m.room.topic'), '$topic1'],
      [key('m.room.power_levels'), '$demote'],
    ],
    added: ['$topic1'],
    replaced: ['$topic2'],
  },
  {
    name: 'a message whose branch brings entries of its own',
    after: new Map([...BEFORE, [key('m.room.name'), '$name']]),
    event: '$message',
    changes: [[key('m.room.name'), '$name']],
    added: ['$name'],
    replaced: [],
  },
  {
    name: 'the event loses its own entry to the other branch',
    after: new Map([...BEFORE, [key('m.room.topic'), '$topicOther']]),
    event: '$topicLost',
    changes: [[key('m.room.topic'), '$topicOther']],
    added: ['$topicOther'],
    replaced: ['$topic2'],
  },
];

describe('state delta of a received event', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const changes = diffStates(BEFORE, c.after);
      assert.deepEqual(
        [...changes].sort(([x], [y]) => x.localeCompare(y)),
        [...c.changes].sort(([x], [y]) => x.localeCompare(y)),
      );
      const plan = planStateDelta(BEFORE, changes, c.event);
      assert.deepEqual([...plan.added].sort(), [...c.added].sort());
      assert.deepEqual([...plan.replaced].sort(), [...c.replaced].sort());
      assert.deepEqual([...plan.eventIds].sort(), [...new Set([...c.added, ...c.replaced])].sort());
    });
  }
});
