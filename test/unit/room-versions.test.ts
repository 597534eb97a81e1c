import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  availableRoomVersions,
  DEFAULT_ROOM_VERSION,
  getRoomVersion,
  isSupportedRoomVersion,
  ROOM_VERSIONS,
} from '../../src/core/room-versions.js';

describe('room versions', () => {
  it('supports 10, 11 and 12, all stable, with 10 the default', () => {
    assert.deepEqual(Object.keys(ROOM_VERSIONS).sort(), ['10', '11', '12']);
    assert.equal(DEFAULT_ROOM_VERSION, '10');
    assert.deepEqual(availableRoomVersions(), { '10': 'stable', '11': 'stable', '12': 'stable' });
  });

  it('recognises only supported version strings', () => {
    for (const id of ['10', '11', '12']) assert.ok(isSupportedRoomVersion(id), id);
    for (const id of [
      '1',
      '9',
      '13',
      '',
      'org.matrix.msc4291',
      12,
      null,
      undefined,
      'toString',
      '__proto__',
    ]) {
      assert.ok(!isSupportedRoomVersion(id), String(id));
    }
  });

  it('describes each version per the spec', () => {
    // property: [v10, v11, v12]
    const table = {
      redactionRules: ['v9', 'v11', 'v11'],
      redactsInContent: [false, true, true],
      createContentHasCreator: [true, false, false],
      createEventHasRoomId: [true, true, false],
      roomIdFromCreateEvent: [false, false, true],
      createEventInAuthEvents: [true, true, false],
      creatorsHavePower: [false, false, true],
      additionalCreators: [false, false, true],
      stateResolution: ['v2', 'v2', 'v2.1'],
    } as const;
    for (const [property, expected] of Object.entries(table)) {
      const actual = (['10', '11', '12'] as const).map(
        (id) => getRoomVersion(id)[property as keyof typeof table],
      );
      assert.deepEqual(actual, expected, property);
    }
    for (const id of ['10', '11', '12'] as const) assert.equal(getRoomVersion(id).id, id);
  });

  it('is frozen', () => {
    assert.ok(Object.isFrozen(ROOM_VERSIONS));
    for (const version of Object.values(ROOM_VERSIONS))
      assert.ok(Object.isFrozen(version), version.id);
  });
});
