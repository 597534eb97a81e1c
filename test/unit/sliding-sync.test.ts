import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatPos,
  mergeConfigs,
  asksEveryMember,
  needsWholeState,
  parsePos,
  selectState,
  spansOfRanges,
  stateSelected,
} from '../../src/core/sliding-sync.js';
import {
  directRoomsOf,
  listCriteria,
  orderRoomList,
} from '../../src/services/sliding-sync/room-list.js';
import type { RoomListEntry } from '../../src/storage/index.js';

const ME = '@me:x';

describe('sliding sync: positions', () => {
  it('formats and parses, refusing anything else', () => {
    assert.deepEqual(parsePos(formatPos(3, 1234)), { counter: 3, streamPosition: 1234 });
    for (const bad of ['', '3', '3_', '_4', 'a_1', '1_2_3', '-1_2', `${'9'.repeat(16)}_1`])
      assert.equal(parsePos(bad), null, bad);
  });
});

describe('sliding sync: required_state', () => {
  const table: [string, [string, string][], [string, string][], [string, string][]][] = [
    ['exact keys', [['m.room.name', '']], [['m.room.name', '']], [['m.room.topic', '']]],
    ['$ME', [['m.room.member', '$ME']], [['m.room.member', ME]], [['m.room.member', '@you:x']]],
    [
      'type wildcard',
      [['m.room.member', '*']],
      [['m.room.member', '@you:x']],
      [['m.room.name', '']],
    ],
    [
      'state key wildcard',
      [['*', '']],
      [
        ['m.room.name', ''],
        ['m.room.topic', ''],
      ],
      [['m.room.member', ME]],
    ],
    [
      'everything',
      [['*', '*']],
      [
        ['m.room.member', '@you:x'],
        ['x', 'y'],
      ],
      [],
    ],
  ];
  for (const [name, required, selected, left] of table)
    it(name, () => {
      const selection = selectState(required, ME);
      for (const [t, k] of selected) assert.ok(stateSelected(selection, t, k), `${t} ${k}`);
      for (const [t, k] of left) assert.ok(!stateSelected(selection, t, k), `${t} ${k}`);
    });

  it('$LAZY is a flag, not a key; wildcards need the whole state', () => {
    const lazy = selectState(
      [
        ['m.room.member', '$LAZY'],
        ['m.room.create', ''],
      ],
      ME,
    );
    assert.equal(lazy.lazyMembers, true);
    assert.ok(!stateSelected(lazy, 'm.room.member', '$LAZY'));
    assert.equal(needsWholeState(lazy), false);
    assert.equal(needsWholeState(selectState([['m.room.member', '*']], ME)), true);
  });

  it('asks for every member with a member wildcard or the whole state, not lazily or by key', () => {
    const asks = (required: (readonly [string, string])[]) =>
      asksEveryMember(selectState(required, ME));
    assert.equal(asks([['m.room.member', '*']]), true);
    assert.equal(asks([['*', '*']]), true);
    assert.equal(asks([['m.room.member', '$LAZY']]), false);
    assert.equal(asks([['m.room.member', '$ME']]), false);
    assert.equal(asks([['*', '@alice:example.org']]), false);
    assert.equal(asks([['m.room.name', '*']]), false);
  });

  it('merges configs: union of required state, largest timeline limit', () => {
    const merged = mergeConfigs([
      {
        requiredState: [
          ['a', ''],
          ['b', ''],
        ],
        timelineLimit: 1,
      },
      {
        requiredState: [
          ['b', ''],
          ['c', ''],
        ],
        timelineLimit: 10,
      },
    ]);
    assert.deepEqual(merged, {
      requiredState: [
        ['a', ''],
        ['b', ''],
        ['c', ''],
      ],
      timelineLimit: 10,
    });
  });
});

describe('sliding sync: windows and room lists', () => {
  it('clips ranges to the list and merges overlapping and adjacent ones', () => {
    assert.deepEqual(
      spansOfRanges(
        [
          [8, 9],
          [0, 2],
          [1, 3],
          [4, 4],
        ],
        9,
      ),
      [
        [0, 4],
        [8, 8],
      ],
    );
    assert.deepEqual(spansOfRanges([[3, 10]], 2), []);
    assert.deepEqual(spansOfRanges([[0, 19]], 0), []);
  });

  const entry = (
    roomId: string,
    membership: string,
    membershipPosition: number,
    bumpStamp: number,
    extra: Partial<RoomListEntry> = {},
  ): RoomListEntry => ({
    roomId,
    membership,
    membershipPosition,
    bumpStamp,
    roomType: null,
    encrypted: false,
    ...extra,
  });

  it('orders by recency: bump events and the join for joined rooms, the membership otherwise', () => {
    const rooms = orderRoomList(
      [
        entry('!a', 'join', 5, 50),
        entry('!b', 'join', 60, 10),
        entry('!c', 'invite', 55, 0),
        entry('!d', 'leave', 70, 0),
        entry('!e', 'leave', 20, 0),
      ],
      30,
    );
    assert.deepEqual(
      rooms.map((r) => [r.roomId, r.sortKey]),
      [
        ['!d', 70],
        ['!b', 60],
        ['!c', 55],
        ['!a', 50],
      ],
    );
    assert.deepEqual(
      orderRoomList([entry('!d', 'leave', 70, 0)], null),
      [],
      'a new connection shows no left rooms',
    );
  });

  it('turns filters into criteria: rooms named by is_dm, spaces and tags', async () => {
    const facts = {
      directRooms: directRoomsOf({ '@you:x': ['!dm', '!both'], '@bad:x': 'nope' }),
      roomsTagged: async (tags: readonly string[]) =>
        new Set(tags.includes('m.favourite') ? ['!fav', '!both'] : []),
      childrenOf: async () => new Set(['!child', '!both']),
    };
    const criteria = (filters: Parameters<typeof listCriteria>[2]) =>
      listCriteria(ME, 7, filters, facts);
    assert.deepEqual(await criteria({}), {
      userId: ME,
      since: 7,
      isEncrypted: undefined,
      isInvite: undefined,
      roomTypes: undefined,
      notRoomTypes: undefined,
      onlyRooms: undefined,
      notRooms: [],
    });
    assert.deepEqual([...((await criteria({ isDm: true })).onlyRooms ?? [])].sort(), [
      '!both',
      '!dm',
    ]);
    assert.deepEqual([...((await criteria({ isDm: false })).notRooms ?? [])].sort(), [
      '!both',
      '!dm',
    ]);
    assert.deepEqual((await criteria({ isDm: true, spaces: ['!s'] })).onlyRooms, ['!both']);
    assert.deepEqual(await criteria({ spaces: ['!s'], notTags: ['m.favourite'] }), {
      ...(await criteria({})),
      onlyRooms: ['!child'],
      notRooms: undefined,
    });
    assert.deepEqual((await criteria({ tags: ['m.lowpriority'] })).onlyRooms, []);
    const typed = await criteria({ isEncrypted: true, isInvite: false, roomTypes: [null] });
    assert.deepEqual([typed.isEncrypted, typed.isInvite, typed.roomTypes], [true, false, [null]]);
  });
});
