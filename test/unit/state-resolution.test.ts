import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { RoomVersionId, StateKey } from '../../src/core/pdu.js';
import { stateKeyOf } from '../../src/core/pdu.js';
import { MinHeap } from '../../src/core/state-resolution/heap.js';
import {
  MissingEventsError,
  authChain,
  authChainDifference,
  authGraphLookup,
  conflictedStateSubgraph,
  isPowerEvent,
  mainlineSort,
  partitionStates,
  resolveState,
  reverseTopologicalPowerSort,
  type ResolvableEvent,
} from '../../src/core/state-resolution/index.js';
import {
  ALICE,
  BOB,
  CAROL,
  DAVE,
  JOIN_RULES,
  POWER_LEVELS,
  TOPIC,
  TestDag,
  memberOf,
  type State,
} from '../fixtures/state-dag.js';

const VERSIONS: readonly RoomVersionId[] = ['10', '11', '12'];

interface Case {
  readonly name: string;
  readonly versions?: readonly RoomVersionId[];
  /** Builds the fork; returns the states to resolve. */
  readonly build: (dag: TestDag) => State[];
  /** Expected event per key; `null` for a key that must be absent. */
  readonly expect: Readonly<Record<StateKey, string | null>>;
}

function runTable(title: string, cases: readonly Case[]): void {
  describe(title, () => {
    for (const c of cases) {
      for (const version of c.versions ?? VERSIONS) {
        it(`${c.name} [v${version}]`, () => {
          const dag = new TestDag(version);
          const states = c.build(dag);
          const resolved = resolveState(version, states, dag.lookup);
          for (const [key, expected] of Object.entries(c.expect)) {
            assert.equal(resolved.get(key) ?? null, expected, key.replace('\u0000', '|'));
          }
          // The order of the states never matters.
          const reversed = resolveState(version, [...states].reverse(), dag.lookup);
          assert.deepEqual(new Map([...reversed].sort()), new Map([...resolved].sort()));
        });
      }
    }
  });
}

const topic = (dag: TestDag, state: State, id: string, sender: string, ts?: number) =>
  dag.send(state, {
    id,
    type: 'm.room.topic',
    sender,
    stateKey: '',
    content: { topic: id },
    ...(ts === undefined ? {} : { ts }),
  });

const roomName = (dag: TestDag, state: State, id: string, sender: string, ts: number) =>
  dag.send(state, {
    id,
    type: 'm.room.name',
    sender,
    stateKey: '',
    content: { name: id },
    ts,
  });

runTable('state resolution: the examples of the Server-Server API', [
  {
    // "Room State Resolution": E3 and E4 both set the name; E5 merges them. Same power
    // levels behind both, so the later one is applied last and wins.
    name: 'E3 and E4 name the room; E5 merges them',
    build: (dag) => {
      const e1 = dag.createRoom();
      const e2 = topic(dag, e1, '$E2', ALICE, 100);
      const e3 = roomName(dag, e2, '$E3', ALICE, 300);
      const e4 = roomName(dag, e1, '$E4', BOB, 200);
      return [e3, e4];
    },
    expect: { [stateKeyOf('m.room.name', '')]: '$E3', [TOPIC]: '$E2' },
  },
  {
    // "Soft failure": B bans X; C, concurrent, is X setting the topic; D references both.
    // The algorithm prioritises the ban over the topic change.
    name: 'a ban B and a topic C by the banned user, merged by D',
    build: (dag) => {
      const a = dag.powerLevels(dag.createRoom(), '$A', ALICE, { [BOB]: 50, [CAROL]: 50 });
      const b = dag.member(a, '$B', ALICE, CAROL, 'ban', 200);
      const c = topic(dag, a, '$C', CAROL, 300);
      return [b, c];
    },
    expect: { [memberOf(CAROL)]: '$B', [TOPIC]: null },
  },
]);

runTable('state resolution: forks', [
  {
    name: 'states that agree resolve to themselves',
    build: (dag) => {
      const base = dag.createRoom();
      return [base, new Map(base)];
    },
    expect: { [memberOf(CAROL)]: '$carol-join', [POWER_LEVELS]: '$pl0' },
  },
  {
    name: 'keys present in one state only are kept when they pass auth',
    build: (dag) => {
      const base = dag.createRoom();
      return [topic(dag, base, '$topic', BOB), base];
    },
    expect: { [TOPIC]: '$topic' },
  },
  {
    name: 'topic conflict between equal senders: the later origin_server_ts wins',
    build: (dag) => {
      const base = dag.createRoom();
      return [topic(dag, base, '$topic-b', BOB, 200), topic(dag, base, '$topic-a', ALICE, 100)];
    },
    expect: { [TOPIC]: '$topic-b' },
  },
  {
    name: 'topic conflict with equal timestamps: the greater event ID wins',
    build: (dag) => {
      const base = dag.createRoom();
      return [topic(dag, base, '$topic-x', BOB, 100), topic(dag, base, '$topic-y', ALICE, 100)];
    },
    expect: { [TOPIC]: '$topic-y' },
  },
  {
    name: 'topic conflict: a topic sent under newer power levels beats a later-stamped one',
    build: (dag) => {
      const base = dag.createRoom();
      const older = topic(dag, base, '$topic-old-pl', BOB, 500);
      const newPl = dag.powerLevels(base, '$pl1', ALICE, { [BOB]: 50, [CAROL]: 10 }, 100);
      return [older, topic(dag, newPl, '$topic-new-pl', ALICE, 200)];
    },
    expect: { [TOPIC]: '$topic-new-pl', [POWER_LEVELS]: '$pl1' },
  },
  {
    name: 'concurrent power level changes: the more powerful sender goes first, the other is refused',
    build: (dag) => {
      const base = dag.createRoom();
      // Alice gives Carol 50; Bob (50), later, gives Dave 50 from the old levels — which
      // would take Carol's 50 away, something Bob may not do once Alice's change is applied.
      return [
        dag.powerLevels(base, '$pl-alice', ALICE, { [BOB]: 50, [CAROL]: 50 }, 100),
        dag.powerLevels(base, '$pl-bob', BOB, { [BOB]: 50, [DAVE]: 50 }, 200),
      ];
    },
    expect: { [POWER_LEVELS]: '$pl-alice' },
  },
  {
    name: 'concurrent power level changes that both pass: the later one in power order wins',
    build: (dag) => {
      const base = dag.createRoom();
      return [
        dag.powerLevels(base, '$pl-a1', ALICE, { [BOB]: 50, [CAROL]: 20 }, 300),
        dag.powerLevels(base, '$pl-a2', ALICE, { [BOB]: 50, [DAVE]: 20 }, 100),
      ];
    },
    expect: { [POWER_LEVELS]: '$pl-a1' },
  },
  {
    name: 'a ban racing a join: the ban wins even when the join is later',
    build: (dag) => {
      const base = dag.member(dag.createRoom(), '$carol-leave', CAROL, CAROL, 'leave');
      return [
        dag.member(base, '$ban-carol', BOB, CAROL, 'ban', 100),
        dag.member(base, '$carol-rejoin', CAROL, CAROL, 'join', 200),
      ];
    },
    expect: { [memberOf(CAROL)]: '$ban-carol' },
  },
  {
    name: 'a ban racing a message-free join of a new user: the new user stays out',
    build: (dag) => {
      const base = dag.createRoom();
      return [
        dag.member(base, '$ban-dave', ALICE, DAVE, 'ban', 100),
        dag.member(base, '$dave-join', DAVE, DAVE, 'join', 50),
      ];
    },
    expect: { [memberOf(DAVE)]: '$ban-dave' },
  },
  {
    name: 'a join rule change racing a join: the join is refused under the new rule',
    build: (dag) => {
      const base = dag.createRoom();
      const invite = dag.send(base, {
        id: '$jr-invite',
        type: 'm.room.join_rules',
        sender: ALICE,
        stateKey: '',
        content: { join_rule: 'invite' },
        ts: 100,
      });
      return [invite, dag.member(base, '$dave-join', DAVE, DAVE, 'join', 200)];
    },
    expect: { [JOIN_RULES]: '$jr-invite', [memberOf(DAVE)]: null },
  },
  {
    name: 'a kick by a moderator demoted concurrently is refused',
    build: (dag) => {
      const base = dag.createRoom();
      return [
        dag.powerLevels(base, '$demote-bob', ALICE, {}, 200),
        dag.member(base, '$kick-carol', BOB, CAROL, 'leave', 100),
      ];
    },
    expect: { [POWER_LEVELS]: '$demote-bob', [memberOf(CAROL)]: '$carol-join' },
  },
  {
    name: 'a kick by a moderator not demoted goes through',
    build: (dag) => {
      const base = dag.createRoom();
      return [
        dag.powerLevels(base, '$pl-dave', ALICE, { [BOB]: 50, [DAVE]: 10 }, 200),
        dag.member(base, '$kick-carol', BOB, CAROL, 'leave', 100),
      ];
    },
    expect: { [POWER_LEVELS]: '$pl-dave', [memberOf(CAROL)]: '$kick-carol' },
  },
  {
    name: 'events rejected on receipt never enter the resolved state',
    build: (dag) => {
      const base = dag.createRoom();
      const rejected = dag.send(base, {
        id: '$topic-rejected',
        type: 'm.room.topic',
        sender: CAROL,
        stateKey: '',
        content: { topic: 'x' },
        rejected: true,
      });
      return [rejected, topic(dag, base, '$topic-ok', BOB, 1)];
    },
    expect: { [TOPIC]: '$topic-ok' },
  },
  {
    name: 'a rejected ban takes part in the ordering but never enters the state',
    build: (dag) => {
      const base = dag.member(dag.createRoom(), '$carol-leave', CAROL, CAROL, 'leave');
      const banned = dag.send(base, {
        id: '$ban-rejected',
        type: 'm.room.member',
        sender: BOB,
        stateKey: CAROL,
        content: { membership: 'ban' },
        rejected: true,
      });
      return [banned, dag.member(base, '$carol-rejoin', CAROL, CAROL, 'join')];
    },
    expect: { [memberOf(CAROL)]: '$carol-rejoin' },
  },
  {
    name: 'a state event whose sender lacks the power is dropped from a conflict',
    build: (dag) => {
      const base = dag.createRoom();
      return [
        topic(dag, base, '$topic-carol', CAROL, 900),
        dag.send(base, {
          id: '$name',
          type: 'm.room.name',
          sender: BOB,
          stateKey: '',
          content: { name: 'n' },
        }),
      ];
    },
    // Carol (0) may not set the topic (state_default 50): the key ends up absent.
    expect: { [TOPIC]: null, [stateKeyOf('m.room.name', '')]: '$name' },
  },
]);

/**
 * A fork where v2 and v2.1 differ. Bob (50) changes the join rules to public and later
 * leaves; Alice sets them to invite. Both states agree that Bob has left (unconflicted). v2
 * checks Bob's change against the unconflicted state — where Bob has left — and refuses it;
 * v2.1 starts from an empty state, so Bob's change is checked against its own auth events
 * (Bob joined) and, being after Alice's in the power order, wins.
 */
function leftSenderFork(dag: TestDag): State[] {
  let base = dag.createRoom();
  base = dag.send(base, {
    id: '$jr-knock',
    type: 'm.room.join_rules',
    sender: ALICE,
    stateKey: '',
    content: { join_rule: 'knock' },
  });
  const bobPublic = dag.send(base, {
    id: '$jr-bob',
    type: 'm.room.join_rules',
    sender: BOB,
    stateKey: '',
    content: { join_rule: 'public' },
    ts: 100,
  });
  const bobLeft = dag.member(base, '$bob-leave', BOB, BOB, 'leave', 101);
  const aliceInvite = dag.send(bobLeft, {
    id: '$jr-alice',
    type: 'm.room.join_rules',
    sender: ALICE,
    stateKey: '',
    content: { join_rule: 'invite' },
    ts: 50,
  });
  const a = new Map(bobPublic);
  a.set(memberOf(BOB), '$bob-leave');
  return [a, aliceInvite];
}

runTable('state resolution: where v2 and v2.1 (room version 12) differ', [
  {
    name: 'v2 checks a conflicted power event against the unconflicted state',
    versions: ['10', '11'],
    build: leftSenderFork,
    expect: { [JOIN_RULES]: '$jr-alice', [memberOf(BOB)]: '$bob-leave' },
  },
  {
    name: 'v2.1 starts the power events from an empty state',
    versions: ['12'],
    build: leftSenderFork,
    expect: { [JOIN_RULES]: '$jr-bob', [memberOf(BOB)]: '$bob-leave' },
  },
]);

describe('state resolution: building blocks', () => {
  it('pops a heap in comparator order', () => {
    const values = [5, 3, 9, 1, 1, 8, 2, 7, 0, 6, 4];
    const heap = new MinHeap<number>((a, b) => a - b);
    for (const value of values) heap.push(value);
    assert.equal(heap.size, values.length);
    const popped: number[] = [];
    for (let value = heap.pop(); value !== undefined; value = heap.pop()) popped.push(value);
    assert.deepEqual(
      popped,
      [...values].sort((a, b) => a - b),
    );
    assert.equal(heap.pop(), undefined);
  });

  it('partitions states into unconflicted and conflicted', () => {
    const k1 = stateKeyOf('a', '');
    const k2 = stateKeyOf('b', '');
    const k3 = stateKeyOf('c', '');
    const { unconflicted, conflicted } = partitionStates([
      new Map([
        [k1, '$1'],
        [k2, '$2'],
        [k3, '$3'],
      ]),
      new Map([
        [k1, '$1'],
        [k2, '$2b'],
      ]),
    ]);
    assert.deepEqual([...unconflicted], [[k1, '$1']]);
    assert.deepEqual([...conflicted].sort(), ['$2', '$2b', '$3']);
  });

  it('recognises power events', () => {
    const base = { sender: ALICE, content: {} };
    const cases: [Parameters<typeof isPowerEvent>[0], boolean][] = [
      [{ ...base, type: 'm.room.power_levels', state_key: '' }, true],
      [{ ...base, type: 'm.room.join_rules', state_key: '' }, true],
      [{ ...base, type: 'm.room.member', state_key: BOB, content: { membership: 'ban' } }, true],
      [{ ...base, type: 'm.room.member', state_key: BOB, content: { membership: 'leave' } }, true],
      [
        { ...base, type: 'm.room.member', state_key: ALICE, content: { membership: 'leave' } },
        false,
      ],
      [
        { ...base, type: 'm.room.member', state_key: BOB, content: { membership: 'invite' } },
        false,
      ],
      [{ ...base, type: 'm.room.create', state_key: '' }, true],
      [{ ...base, type: 'm.room.topic', state_key: '' }, false],
      [{ ...base, type: 'm.room.power_levels' }, false],
    ];
    for (const [event, expected] of cases) assert.equal(isPowerEvent(event), expected, event.type);
  });

  /** A bare DAG: id → auth event IDs. */
  const graph = (edges: Record<string, string[]>, ts: Record<string, number> = {}) => {
    const events = new Map<string, ResolvableEvent>();
    for (const [id, auth] of Object.entries(edges)) {
      events.set(id, {
        event_id: id,
        type: 'm.room.topic',
        state_key: '',
        sender: ALICE,
        content: {},
        room_id: '!r:a.test',
        origin_server_ts: ts[id] ?? 0,
        auth_events: auth,
        prev_events: [],
      });
    }
    return (id: string) => events.get(id);
  };

  it('computes auth chains, without the starting events', () => {
    const lookup = graph({ $a: ['$b', '$c'], $b: ['$d'], $c: ['$d'], $d: [] });
    assert.deepEqual([...authChain(['$a'], lookup)].sort(), ['$b', '$c', '$d']);
    assert.deepEqual([...authChain(['$b', '$c'], lookup)].sort(), ['$d']);
  });

  it('reports every missing auth event at once', () => {
    const lookup = graph({ $a: ['$x', '$y'] });
    assert.throws(
      () => authChain(['$a'], lookup),
      (error: unknown) =>
        error instanceof MissingEventsError && [...error.eventIds].sort().join() === '$x,$y',
    );
  });

  it('lists the implicit create event among the auth events in room version 12', () => {
    const dag = new TestDag('12');
    dag.createRoom();
    const lookup = authGraphLookup(dag.lookup, '12');
    assert.deepEqual(dag.lookup('$bob-join')?.auth_events.includes('$create'), false);
    assert.deepEqual(lookup('$bob-join')?.auth_events.includes('$create'), true);
    assert.deepEqual(lookup('$create')?.auth_events, []);
    assert.ok(authChain(['$bob-join'], lookup).has('$create'));
    const older = new TestDag('11');
    older.createRoom();
    assert.equal(authGraphLookup(older.lookup, '11'), older.lookup);
  });

  it('computes the auth difference as union minus intersection', () => {
    // Both states hold $c (common); state 1 adds $a (→ $b), state 2 adds $e (→ $b, $f).
    const lookup = graph({ $a: ['$b'], $b: ['$d'], $c: ['$d'], $d: [], $e: ['$b', '$f'], $f: [] });
    const diff = authChainDifference([new Set(['$c', '$a']), new Set(['$c', '$e'])], lookup);
    assert.deepEqual([...diff].sort(), ['$a', '$e', '$f']);
  });

  it('finds the conflicted state subgraph (paths between conflicted events only)', () => {
    // $a → $b → $c → $d, $a → $e → $f; conflicted: $a and $d.
    const lookup = graph({ $a: ['$b', '$e'], $b: ['$c'], $c: ['$d'], $d: [], $e: ['$f'], $f: [] });
    const subgraph = conflictedStateSubgraph(new Set(['$a', '$d']), lookup);
    assert.deepEqual([...subgraph].sort(), ['$a', '$b', '$c', '$d']);
  });

  it('sorts by auth order first, then power, then timestamp, then event ID', () => {
    const dag = new TestDag('11');
    const base = dag.createRoom();
    dag.powerLevels(base, '$pl-bob', BOB, { [BOB]: 50 }, 10); // power 50
    dag.powerLevels(base, '$pl-alice-late', ALICE, { [BOB]: 50 }, 30); // power 100
    dag.powerLevels(base, '$pl-alice-b', ALICE, { [BOB]: 50 }, 20);
    dag.powerLevels(base, '$pl-alice-a', ALICE, { [BOB]: 50 }, 20);
    const order = reverseTopologicalPowerSort(
      ['$pl-bob', '$pl-alice-late', '$pl-alice-b', '$pl-alice-a', '$pl0'],
      '11',
      dag.lookup,
    );
    // $pl0 is an auth event of all the others, so it comes first whatever its sender's power.
    assert.deepEqual(order, ['$pl0', '$pl-alice-a', '$pl-alice-b', '$pl-alice-late', '$pl-bob']);
  });

  it('counts room version 12 creators as more powerful than any level', () => {
    for (const version of ['11', '12'] as const) {
      const dag = new TestDag(version);
      const base = dag.powerLevels(dag.createRoom(), '$pl-carol-100', ALICE, {
        [BOB]: 50,
        [CAROL]: 100,
      });
      dag.send(base, {
        id: '$jr-carol',
        type: 'm.room.join_rules',
        sender: CAROL,
        stateKey: '',
        content: { join_rule: 'invite' },
        ts: 10,
      });
      dag.send(base, {
        id: '$jr-alice',
        type: 'm.room.join_rules',
        sender: ALICE,
        stateKey: '',
        content: { join_rule: 'knock' },
        ts: 20,
      });
      const order = reverseTopologicalPowerSort(['$jr-alice', '$jr-carol'], version, dag.lookup);
      // Version 11: both at 100, so the earlier event first; version 12: Alice is the creator.
      assert.deepEqual(
        order,
        version === '12' ? ['$jr-alice', '$jr-carol'] : ['$jr-carol', '$jr-alice'],
        `v${version}`,
      );
    }
  });

  it('names the events it lacks when resolving', () => {
    const dag = new TestDag('11');
    const base = dag.createRoom();
    const withTopic = topic(dag, base, '$topic', BOB);
    dag.events.delete('$bob-join');
    assert.throws(
      () => resolveState('11', [withTopic, base], dag.lookup),
      (error: unknown) =>
        error instanceof MissingEventsError && error.eventIds.includes('$bob-join'),
    );
  });

  it('orders by mainline position, then timestamp, then event ID', () => {
    const dag = new TestDag('10');
    const base = dag.createRoom();
    const pl1 = dag.powerLevels(base, '$pl1', ALICE, { [BOB]: 50 });
    const pl2 = dag.powerLevels(pl1, '$pl2', ALICE, { [BOB]: 50 });
    topic(dag, base, '$t-pl0', BOB, 900);
    topic(dag, pl1, '$t-pl1', BOB, 800);
    topic(dag, pl2, '$t-pl2-b', BOB, 100);
    topic(dag, pl2, '$t-pl2-a', BOB, 100);
    const noPl = dag.send(new Map(), {
      id: '$no-pl',
      type: 'm.room.topic',
      sender: BOB,
      stateKey: '',
      ts: 1000,
      authEvents: ['$create'],
    });
    assert.ok(noPl);
    const order = mainlineSort(
      ['$t-pl2-b', '$t-pl0', '$t-pl2-a', '$no-pl', '$t-pl1'],
      '$pl2',
      dag.lookup,
    );
    assert.deepEqual(order, ['$no-pl', '$t-pl0', '$t-pl1', '$t-pl2-a', '$t-pl2-b']);
  });

  it('resolves a fork in a large room without walking it quadratically', () => {
    // 3,000 members, then a fork of 200 joins against a join rule change: a smoke test of
    // scale (the runner's timeout is the only limit; no timing assertion).
    const dag = new TestDag('12');
    let base = dag.createRoom();
    for (let i = 0; i < 3000; i += 1) {
      const user = `@user${i}:m.test`;
      base = dag.member(base, `$join-${i}`, user, user, 'join');
    }
    let joins = new Map(base);
    for (let i = 0; i < 200; i += 1) {
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
    const resolved = resolveState('12', [joins, closed], dag.lookup);
    assert.equal(resolved.get(JOIN_RULES), '$jr-invite');
    assert.equal(resolved.get(memberOf('@late0:m.test')), undefined);
    assert.equal(resolved.get(memberOf('@user2999:m.test')), '$join-2999');
  });
});
