import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MEMBERSHIPS, selectedMemberships } from '../../src/services/member-lists.js';

describe('member list selection (spec: membership OR not not_membership; filter AND)', () => {
  const cases: [
    string,
    string[] | undefined,
    string[] | undefined,
    string[] | undefined,
    string[] | null,
  ][] = [
    ['nothing: everyone', undefined, undefined, undefined, null],
    ['membership only', ['join'], undefined, undefined, ['join']],
    ['repeated membership', ['join', 'invite'], undefined, undefined, ['join', 'invite']],
    ['not_membership only', undefined, ['leave'], undefined, ['join', 'invite', 'knock', 'ban']],
    ['both: or', ['leave'], ['join'], undefined, ['invite', 'knock', 'leave', 'ban']],
    ['both overlapping', ['join'], ['leave'], undefined, ['join', 'invite', 'knock', 'ban']],
    ['filter narrows', undefined, undefined, ['ban'], ['ban']],
    ['filter and params', ['join', 'invite'], undefined, ['invite', 'ban'], ['invite']],
    ['nothing left', ['join'], undefined, ['leave'], []],
    ['not_membership of everything', undefined, [...MEMBERSHIPS], undefined, []],
  ];
  for (const [name, memberships, notMemberships, filter, expected] of cases) {
    it(name, () => {
      assert.deepEqual(selectedMemberships(memberships, notMemberships, filter), expected);
    });
  }
});
