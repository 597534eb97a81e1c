/**
 * The per-process caches kept true by the change feed (src/services/user-cache.ts), on real
 * change feeds: SQLite's (always current) and a PostgreSQL one that is not listening (never
 * current, as when its LISTEN connection is down). No database is opened.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createChangeFeed } from '../../src/storage/change-feed.js';
import { decodeChange, encodeChange } from '../../src/storage/stream-store.js';
import { createUserCache } from '../../src/services/user-cache.js';

const sqliteFeed = () => createChangeFeed('sqlite', 'sqlite::memory:', undefined);
const byUsers = { usersNamedBy: (change: { users?: readonly string[] }) => change.users };

describe('user cache', () => {
  it('keeps a value until a change names one of its users', () => {
    const feed = sqliteFeed();
    const cache = createUserCache<string>(feed, { max: 10, ...byUsers });
    cache.set('ab', 'pair of a and b', ['@a:x', '@b:x'], cache.ticket());
    cache.set('cd', 'pair of c and d', ['@c:x', '@d:x'], cache.ticket());
    assert.equal(cache.get('ab'), 'pair of a and b');

    feed.publish({ rooms: ['!r:x'] });
    feed.publish({ users: ['@e:x'] });
    feed.publish({ sessions: ['@a:x'] });
    assert.equal(cache.get('ab'), 'pair of a and b', 'changes naming nobody it holds');

    feed.publish({ users: ['@b:x'] });
    assert.equal(cache.get('ab'), undefined);
    assert.equal(cache.get('cd'), 'pair of c and d');
  });

  it('with a size budget, drops the least recently used to stay within it, and keeps no value larger than it', () => {
    const feed = sqliteFeed();
    const cache = createUserCache<Buffer>(feed, {
      max: 100,
      maxSize: 10,
      sizeOf: (value) => value.length,
      usersNamedBy: (change) => change.memberRooms,
    });
    cache.set('!a:x', Buffer.alloc(4), ['!a:x'], cache.ticket());
    cache.set('!b:x', Buffer.alloc(4), ['!b:x'], cache.ticket());
    assert.ok(cache.get('!a:x'), 'a used last');
    cache.set('!c:x', Buffer.alloc(4), ['!c:x'], cache.ticket());
    assert.equal(cache.get('!b:x'), undefined, 'b went to make room');
    assert.ok(cache.get('!a:x') && cache.get('!c:x'));
    cache.set('!d:x', Buffer.alloc(11), ['!d:x'], cache.ticket());
    assert.equal(cache.get('!d:x'), undefined, 'larger than the budget');
    assert.ok(cache.get('!a:x') && cache.get('!c:x'), 'and nothing else went for it');
    feed.publish({ memberRooms: ['!a:x'] });
    assert.equal(cache.get('!a:x'), undefined);
    assert.ok(cache.get('!c:x'));
  });

  it('drops everything on a change that may concern anyone', () => {
    const feed = sqliteFeed();
    const cache = createUserCache<number>(feed, { max: 10, ...byUsers });
    for (let i = 0; i < 5; i++) cache.set(`k${i}`, i, [`@u${i}:x`], cache.ticket());
    feed.publish({ everyone: true });
    for (let i = 0; i < 5; i++) assert.equal(cache.get(`k${i}`), undefined);
  });

  it('does not keep a value read before a change that could have altered it', () => {
    const feed = sqliteFeed();
    const cache = createUserCache<string>(feed, { max: 10, ...byUsers });
    const ticket = cache.ticket();
    // ... the database read happens here, and a membership change commits meanwhile ...
    feed.publish({ users: ['@z:x'] });
    cache.set('ab', 'maybe stale', ['@a:x', '@b:x'], ticket);
    assert.equal(cache.get('ab'), undefined);
    cache.set('ab', 'read afresh', ['@a:x', '@b:x'], cache.ticket());
    assert.equal(cache.get('ab'), 'read afresh');
  });

  it('selects the changes it follows: a session cache ignores membership changes', () => {
    const feed = sqliteFeed();
    const cache = createUserCache<string>(feed, {
      max: 10,
      usersNamedBy: (change) => change.sessions,
    });
    cache.set('token-hash', '@a:x', ['@a:x'], cache.ticket());
    feed.publish({ users: ['@a:x'], rooms: ['!r:x'] });
    assert.equal(cache.get('token-hash'), '@a:x');
    feed.publish({ sessions: ['@a:x'] });
    assert.equal(cache.get('token-hash'), undefined);
  });

  it('keeps its user index right through evictions and overwrites', () => {
    const feed = sqliteFeed();
    const cache = createUserCache<string>(feed, { max: 2, ...byUsers });
    cache.set('k1', 'one', ['@a:x'], cache.ticket());
    cache.set('k2', 'two', ['@b:x'], cache.ticket());
    cache.set('k3', 'three', ['@c:x'], cache.ticket()); // evicts k1
    assert.equal(cache.get('k1'), undefined);
    cache.set('k2', 'two again', ['@d:x'], cache.ticket());
    feed.publish({ users: ['@a:x', '@b:x'] });
    assert.equal(cache.get('k2'), 'two again', 'k2 no longer belongs to @b');
    assert.equal(cache.get('k3'), 'three');
    feed.publish({ users: ['@d:x'] });
    assert.equal(cache.get('k2'), undefined);
  });

  it('is neither read nor filled while the feed may be missing changes', () => {
    // A PostgreSQL feed that is not listening: another process's change would not arrive.
    const feed = createChangeFeed('postgres', 'postgres://127.0.0.1:1/none', undefined);
    assert.equal(feed.current(), false);
    const cache = createUserCache<string>(feed, { max: 10, ...byUsers });
    cache.set('ab', 'value', ['@a:x'], cache.ticket());
    assert.equal(cache.get('ab'), undefined);
  });

  it('stops following the feed when closed', () => {
    const feed = sqliteFeed();
    const cache = createUserCache<string>(feed, { max: 10, ...byUsers });
    cache.set('ab', 'value', ['@a:x'], cache.ticket());
    cache.close();
    assert.equal(cache.get('ab'), undefined);
    cache.set('ab', 'value', ['@a:x'], cache.ticket());
    assert.equal(cache.get('ab'), undefined);
  });
});

describe('change notifications', () => {
  it('carry the sending process, which skips its own when they come back', () => {
    const change = {
      rooms: ['!r:x'],
      users: ['@a:x'],
      memberRooms: ['!r:x'],
      sessions: ['@b:x'],
    };
    assert.deepEqual(decodeChange(encodeChange(change, 'p1')), { change, origin: 'p1' });
  });

  it('too big to send: everyone, still from the sender', () => {
    const users = Array.from({ length: 400 }, (_, i) => `@user${i}:example.org`);
    assert.deepEqual(decodeChange(encodeChange({ users }, 'p1')), {
      change: { everyone: true },
      origin: 'p1',
    });
  });

  it('unreadable: everyone, from nobody known', () => {
    for (const payload of [undefined, '', 'not json', '42', 'null'])
      assert.deepEqual(decodeChange(payload), { change: { everyone: true }, origin: null });
  });
});
