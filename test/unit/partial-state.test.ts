/** Which state a partial-state send_join answer keeps, and the auth state of an event received during the gap. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { stateKeyOf } from '../../src/core/pdu.js';
import { fillMissingMembers, partialJoinState } from '../../src/core/partial-state.js';

const member = (userId: string, membership: string) => ({
  pdu: { type: 'm.room.member', state_key: userId, content: { membership } },
});
const other = (type: string) => ({ pdu: { type, state_key: '', content: {} } });

function room(members: [string, string][], extra: string[] = []) {
  const state = new Map<string, string>();
  const events = new Map<string, ReturnType<typeof member> | ReturnType<typeof other>>();
  for (const type of ['m.room.create', 'm.room.power_levels', 'm.room.join_rules', ...extra]) {
    state.set(stateKeyOf(type, ''), `$${type}`);
    events.set(`$${type}`, other(type));
  }
  for (const [userId, membership] of members) {
    state.set(stateKeyOf('m.room.member', userId), `$${userId}`);
    events.set(`$${userId}`, member(userId, membership));
  }
  return { state, events };
}

it('keeps every non-member event and the joiner’s own membership in a named room', () => {
  const { state, events } = room(
    [
      ['@a:x', 'join'],
      ['@b:x', 'join'],
      ['@joiner:y', 'invite'],
    ],
    ['m.room.name'],
  );
  const kept = partialJoinState(state, events, '@joiner:y');
  assert.deepEqual([...kept].sort(), [
    '$@joiner:y',
    '$m.room.create',
    '$m.room.join_rules',
    '$m.room.name',
    '$m.room.power_levels',
  ]);
});

it('keeps five heroes (joined by user ID, then invited) when the room has no name or alias', () => {
  const members: [string, string][] = [
    ['@g:x', 'join'],
    ['@c:x', 'invite'],
    ['@f:x', 'join'],
    ['@e:x', 'join'],
    ['@d:x', 'leave'],
    ['@b:x', 'join'],
    ['@a:x', 'invite'],
    ['@joiner:y', 'leave'],
  ];
  const { state, events } = room(members);
  const kept = [...partialJoinState(state, events, '@joiner:y')].filter((id) => id.includes(':'));
  assert.deepEqual(kept.sort(), ['$@a:x', '$@b:x', '$@e:x', '$@f:x', '$@g:x', '$@joiner:y']);
});

it('a canonical alias names the room too: no heroes', () => {
  const { state, events } = room([['@a:x', 'join']], ['m.room.canonical_alias']);
  assert.ok(!partialJoinState(state, events, '@j:y').has('$@a:x'));
});

it('fills only the member entries the partial state lacks from the event’s auth events', () => {
  const have = new Map([
    [stateKeyOf('m.room.member', '@a:x'), { type: 'm.room.member', state_key: '@a:x', id: 'ours' }],
  ]);
  const filled = fillMissingMembers(have, [
    { type: 'm.room.member', state_key: '@a:x', id: 'theirs' },
    { type: 'm.room.member', state_key: '@b:x', id: 'b' },
    { type: 'm.room.power_levels', state_key: '', id: 'pl' },
  ]);
  assert.equal(filled.get(stateKeyOf('m.room.member', '@a:x'))?.id, 'ours');
  assert.equal(filled.get(stateKeyOf('m.room.member', '@b:x'))?.id, 'b');
  assert.equal(filled.has(stateKeyOf('m.room.power_levels', '')), false);
});
