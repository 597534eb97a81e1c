import assert from 'node:assert/strict';
import { it } from 'node:test';
import { relationOf } from '../../src/core/relations.js';

it('reads a relation from m.relates_to, and only a well-formed one', () => {
  const cases: [unknown, string, ReturnType<typeof relationOf>][] = [
    [
      { rel_type: 'm.thread', event_id: '$a' },
      'm.room.message',
      { relType: 'm.thread', eventId: '$a' },
    ],
    [
      { rel_type: 'm.annotation', event_id: '$b', key: 'x' },
      'm.reaction',
      { relType: 'm.annotation', eventId: '$b' },
    ],
    [{ 'm.in_reply_to': { event_id: '$c' } }, 'm.room.message', null],
    [{ rel_type: 'm.thread', event_id: 'c' }, 'm.room.message', null],
    [{ rel_type: '', event_id: '$c' }, 'm.room.message', null],
    [{ rel_type: 7, event_id: '$c' }, 'm.room.message', null],
    [{ rel_type: 'm.thread', event_id: `$${'x'.repeat(300)}` }, 'm.room.message', null],
    [{ rel_type: 'm.thread\u0000', event_id: '$c' }, 'm.room.message', null],
    [['m.thread', '$c'], 'm.room.message', null],
    ['m.thread', 'm.room.message', null],
    [null, 'm.room.message', null],
    [undefined, 'm.room.message', null],
    [{ rel_type: 'm.reference', event_id: '$d' }, 'm.room.redaction', null],
  ];
  for (const [relatesTo, type, expected] of cases) {
    const content = relatesTo === undefined ? {} : { 'm.relates_to': relatesTo };
    assert.deepEqual(relationOf(content as never, type), expected, JSON.stringify(relatesTo));
  }
});
