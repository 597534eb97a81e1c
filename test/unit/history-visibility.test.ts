import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  isVisibleAt,
  isVisibleInState,
  valueAt,
  type PositionedValue,
  type StateAtEvent,
} from '../../src/core/history-visibility.js';

const at = (entries: [number, string][]): PositionedValue[] =>
  entries.map(([streamOrdering, value]) => ({ streamOrdering, value }));

describe('history visibility', () => {
  it('valueAt takes the last change at or before the position', () => {
    const history = at([
      [1, 'a'],
      [5, 'b'],
    ]);
    assert.equal(valueAt(history, 0), undefined);
    assert.equal(valueAt(history, 1), 'a');
    assert.equal(valueAt(history, 4), 'a');
    assert.equal(valueAt(history, 9), 'b');
  });

  const cases: {
    name: string;
    visibility: [number, string][];
    memberships: [number, string][];
    position: number;
    visible: boolean;
  }[] = [
    {
      name: 'world_readable: anyone',
      visibility: [[1, 'world_readable']],
      memberships: [],
      position: 3,
      visible: true,
    },
    {
      name: 'shared: before joining, once joined',
      visibility: [[1, 'shared']],
      memberships: [[10, 'join']],
      position: 3,
      visible: true,
    },
    {
      name: 'shared: never joined',
      visibility: [[1, 'shared']],
      memberships: [[10, 'invite']],
      position: 3,
      visible: false,
    },
    {
      name: 'shared: after leaving',
      visibility: [[1, 'shared']],
      memberships: [
        [2, 'join'],
        [5, 'leave'],
      ],
      position: 7,
      visible: false,
    },
    {
      name: 'shared: while joined, after leaving',
      visibility: [[1, 'shared']],
      memberships: [
        [2, 'join'],
        [5, 'leave'],
      ],
      position: 4,
      visible: true,
    },
    {
      name: 'invited: from the invite on',
      visibility: [[1, 'invited']],
      memberships: [
        [4, 'invite'],
        [8, 'join'],
      ],
      position: 5,
      visible: true,
    },
    {
      name: 'invited: before the invite',
      visibility: [[1, 'invited']],
      memberships: [
        [4, 'invite'],
        [8, 'join'],
      ],
      position: 3,
      visible: false,
    },
    {
      name: 'joined: while joined',
      visibility: [[1, 'joined']],
      memberships: [[4, 'join']],
      position: 5,
      visible: true,
    },
    {
      name: 'joined: before joining',
      visibility: [[1, 'joined']],
      memberships: [[4, 'join']],
      position: 3,
      visible: false,
    },
    {
      name: 'joined: while invited',
      visibility: [[1, 'joined']],
      memberships: [[4, 'invite']],
      position: 5,
      visible: false,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(
        isVisibleAt(c.position, { visibilities: at(c.visibility), memberships: at(c.memberships) }),
        c.visible,
      );
    });
  }

  // Backfilled history (negative positions): the state at the event decides, and for
  // `shared` the user's joins at any later position.
  const stateCases: {
    name: string;
    state: StateAtEvent;
    memberships: [number, string][];
    visible: boolean;
  }[] = [
    {
      name: 'state: world_readable to a stranger',
      state: { visibility: 'world_readable', membership: undefined },
      memberships: [],
      visible: true,
    },
    {
      name: 'state: joined, and the user joined there',
      state: { visibility: 'joined', membership: 'join' },
      memberships: [],
      visible: true,
    },
    {
      name: 'state: joined, the user not in the room there though joined since',
      state: { visibility: 'joined', membership: undefined },
      memberships: [[3, 'join']],
      visible: false,
    },
    {
      name: 'state: invited, and the user invited there',
      state: { visibility: 'invited', membership: 'invite' },
      memberships: [[3, 'join']],
      visible: true,
    },
    {
      name: 'state: invited, the user not invited there',
      state: { visibility: 'invited', membership: 'leave' },
      memberships: [[3, 'join']],
      visible: false,
    },
    {
      name: 'state: shared (or none), the user joined later',
      state: { visibility: undefined, membership: undefined },
      memberships: [[3, 'join']],
      visible: true,
    },
    {
      name: 'state: shared, the user never joined',
      state: { visibility: 'shared', membership: undefined },
      memberships: [[3, 'invite']],
      visible: false,
    },
  ];
  for (const c of stateCases) {
    it(c.name, () => {
      assert.equal(
        isVisibleInState(-7, c.state, { visibilities: [], memberships: at(c.memberships) }),
        c.visible,
      );
    });
  }
});
