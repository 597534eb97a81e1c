/** The state-group deltas of the room DAG: what changes one state into another. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { stateKeyOf } from '../../src/core/pdu.js';
import {
  authEdgesOf,
  deltaBaseStep,
  diffStates,
  stateKeyOfPdu,
} from '../../src/services/rooms-dag/state-groups.js';
import type { Pdu } from '../../src/core/pdu.js';

const topic = stateKeyOf('m.room.topic', '');
const name = stateKeyOf('m.room.name', '');
const member = stateKeyOf('m.room.member', '@a:x');

it('diffStates: changed, added and removed entries; none for equal states', () => {
  const from = new Map([
    [topic, '$t1'],
    [name, '$n1'],
  ]);
  const to = new Map([
    [topic, '$t2'],
    [member, '$m1'],
  ]);
  assert.deepEqual(
    diffStates(from, to),
    new Map<string, string | null>([
      [topic, '$t2'],
      [member, '$m1'],
      [name, null],
    ]),
  );
  assert.equal(diffStates(from, new Map(from)).size, 0);
});

it('stateKeyOfPdu and authEdgesOf (v12 adds the create event the room ID names)', () => {
  const pdu = {
    type: 'm.room.member',
    state_key: '@a:x',
    auth_events: ['$pl'],
  } as unknown as Pdu;
  assert.equal(stateKeyOfPdu(pdu), member);
  assert.equal(stateKeyOfPdu({ type: 'm.room.message' }), undefined);
  assert.deepEqual(authEdgesOf(pdu, '!abc', '11'), ['$pl']);
  assert.deepEqual(authEdgesOf(pdu, '!abc', '12'), ['$pl', '$abc']);
});

it('deltaBaseStep: the step with its lowest set bit cleared, always on the chain of the step before', () => {
  assert.deepEqual([1, 2, 3, 4, 6, 7, 12, 96, 100, 2 ** 29 + 2 ** 3].map(deltaBaseStep), [
    0,
    0,
    2,
    0,
    4,
    6,
    8,
    64,
    96,
    2 ** 29,
  ]);
  for (let step = 1; step < 2000; step++) {
    const chainBefore = new Set<number>();
    for (let s = step - 1; s > 0; s = deltaBaseStep(s)) chainBefore.add(s);
    chainBefore.add(0);
    assert.ok(chainBefore.has(deltaBaseStep(step)), `step ${step}`);
  }
});
