/** The presence time-out rules (src/core/presence-timeouts.ts), from times alone. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_PRESENCE_TIMERS as T,
  timedOutPresence,
  type PresenceTimes,
} from '../../src/core/presence-timeouts.js';

const NOW = 10_000_000;
const row = (over: Partial<PresenceTimes>): PresenceTimes => ({
  presence: 'online',
  currentlyActive: true,
  lastActiveTs: NOW,
  lastSyncTs: NOW,
  lastUpdateTs: NOW,
  ...over,
});

describe('presence time-outs', () => {
  it('a local user syncing and active now: nothing', () => {
    assert.equal(timedOutPresence(row({}), true, NOW, T), null);
  });

  it('a local user with no sync and no activity past the sync time-out goes offline', () => {
    const old = NOW - T.syncTimeoutMs - 1;
    assert.deepEqual(timedOutPresence(row({ lastSyncTs: old, lastActiveTs: old }), true, NOW, T), {
      presence: 'offline',
      currentlyActive: false,
    });
    // Either a recent sync or recent activity keeps them.
    assert.equal(timedOutPresence(row({ lastSyncTs: old }), true, NOW, T), null);
    assert.equal(
      timedOutPresence(row({ lastActiveTs: old, currentlyActive: false }), true, NOW, T),
      null,
    );
    // Unavailable users time out to offline the same way.
    assert.deepEqual(
      timedOutPresence(
        row({ presence: 'unavailable', lastSyncTs: old, lastActiveTs: old }),
        true,
        NOW,
        T,
      ),
      { presence: 'offline', currentlyActive: false },
    );
  });

  it('a local user online and syncing with no activity: not currently active, then unavailable', () => {
    const quiet = NOW - T.activeMs - 1;
    assert.deepEqual(timedOutPresence(row({ lastActiveTs: quiet }), true, NOW, T), {
      presence: 'online',
      currentlyActive: false,
    });
    // Told already: nothing more until the idle time-out.
    assert.equal(
      timedOutPresence(row({ lastActiveTs: quiet, currentlyActive: false }), true, NOW, T),
      null,
    );
    const idle = NOW - T.idleMs - 1;
    assert.deepEqual(
      timedOutPresence(row({ lastActiveTs: idle, currentlyActive: false }), true, NOW, T),
      { presence: 'unavailable', currentlyActive: false },
    );
    // An unavailable user does not idle again.
    assert.equal(
      timedOutPresence(
        row({ presence: 'unavailable', lastActiveTs: idle, currentlyActive: false }),
        true,
        NOW,
        T,
      ),
      null,
    );
  });

  it('offline users never time out', () => {
    assert.equal(
      timedOutPresence(row({ presence: 'offline', lastSyncTs: 0, lastActiveTs: 0 }), true, NOW, T),
      null,
    );
    assert.equal(
      timedOutPresence(row({ presence: 'offline', lastUpdateTs: 0 }), false, NOW, T),
      null,
    );
  });

  it('a remote user goes offline only once nothing was heard for the remote time-out', () => {
    // Their own times of sync and activity are their server's business.
    assert.equal(timedOutPresence(row({ lastSyncTs: 0, lastActiveTs: 0 }), false, NOW, T), null);
    assert.equal(
      timedOutPresence(row({ lastUpdateTs: NOW - T.remoteTimeoutMs }), false, NOW, T),
      null,
    );
    assert.deepEqual(
      timedOutPresence(row({ lastUpdateTs: NOW - T.remoteTimeoutMs - 1 }), false, NOW, T),
      { presence: 'offline', currentlyActive: false },
    );
  });
});
