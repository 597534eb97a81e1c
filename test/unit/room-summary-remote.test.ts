import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { remoteSummaryOf } from '../../src/services/room-summary.js';

describe('remoteSummaryOf (another server’s /hierarchy room entry)', () => {
  it('keeps the summary’s fields of the right types', () => {
    assert.deepEqual(
      remoteSummaryOf(
        {
          room_id: '!a:b.example',
          num_joined_members: 3,
          world_readable: true,
          guest_can_join: false,
          join_rule: 'restricted',
          name: 'A',
          topic: 7,
          avatar_url: 'mxc://b.example/x',
          room_version: '11',
          allowed_room_ids: ['!s:b.example', 5],
          children_state: [],
        },
        '!a:b.example',
      ),
      {
        room_id: '!a:b.example',
        num_joined_members: 3,
        world_readable: true,
        guest_can_join: false,
        join_rule: 'restricted',
        name: 'A',
        avatar_url: 'mxc://b.example/x',
        room_version: '11',
        allowed_room_ids: ['!s:b.example'],
      },
    );
  });

  it('answers null for another room or a body that is not a room', () => {
    assert.equal(remoteSummaryOf({ room_id: '!other:b.example' }, '!a:b.example'), null);
    assert.equal(remoteSummaryOf(['!a:b.example'], '!a:b.example'), null);
    assert.equal(remoteSummaryOf(undefined, '!a:b.example'), null);
  });

  it('reads a bad member count as 0 and missing flags as false', () => {
    assert.deepEqual(remoteSummaryOf({ room_id: '!a:b', num_joined_members: -2 }, '!a:b'), {
      room_id: '!a:b',
      num_joined_members: 0,
      world_readable: false,
      guest_can_join: false,
    });
  });
});
