import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MatrixError } from '../../src/core/errors.js';
import { notifyBody, parsePusherRequest, tweaksOf } from '../../src/core/pushers.js';

const URL_OK = 'https://push.example/_matrix/push/v1/notify';
const base = {
  kind: 'http',
  app_id: 'org.example',
  pushkey: 'k',
  app_display_name: 'A',
  device_display_name: 'D',
  lang: 'en',
  data: { url: URL_OK },
};

describe('parsePusherRequest', () => {
  it('reads an http pusher and a deletion', () => {
    assert.deepEqual(parsePusherRequest(base), {
      kind: 'http',
      appId: 'org.example',
      pushkey: 'k',
      appDisplayName: 'A',
      deviceDisplayName: 'D',
      profileTag: null,
      lang: 'en',
      data: { url: URL_OK },
      append: false,
    });
    assert.deepEqual(parsePusherRequest({ kind: null, app_id: 'a', pushkey: 'k' }), {
      kind: null,
      appId: 'a',
      pushkey: 'k',
    });
  });

  it('takes http and https gateways on the notify path only', () => {
    const errcode = (url: string) => {
      try {
        parsePusherRequest({ ...base, data: { url } });
        return 'ok';
      } catch (err) {
        return (err as MatrixError).errcode;
      }
    };
    assert.equal(errcode('http://10.0.0.1:5000/_matrix/push/v1/notify'), 'ok');
    assert.equal(errcode('https://push.example/_matrix/push/v1/notify?x=1'), 'ok');
    assert.equal(errcode('https://push.example/_matrix/push/v1/notify/'), 'M_INVALID_PARAM');
    assert.equal(errcode('https://u:p@push.example/_matrix/push/v1/notify'), 'M_INVALID_PARAM');
    assert.equal(errcode('file:///_matrix/push/v1/notify'), 'M_INVALID_PARAM');
  });
});

describe('tweaksOf', () => {
  it('collects set_tweak actions; highlight without a value is true', () => {
    assert.deepEqual(
      tweaksOf(['notify', { set_tweak: 'sound', value: 'ping' }, { set_tweak: 'highlight' }]),
      { sound: 'ping', highlight: true },
    );
    assert.deepEqual(tweaksOf(['notify', { set_tweak: 'highlight', value: false }]), {
      highlight: false,
    });
    assert.deepEqual(tweaksOf(['notify']), {});
  });
});

describe('notifyBody', () => {
  const event = {
    eventId: '$e',
    roomId: '!r:x',
    type: 'm.room.member',
    sender: '@a:x',
    stateKey: '@b:x',
    content: { membership: 'invite' },
  };
  const device = {
    appId: 'app',
    pushkey: 'k',
    pushkeyTs: 1_700_000_000_999,
    data: { url: URL_OK },
  };

  it('full format: user_is_target, counts without zeros, low priority without tweaks', () => {
    const { notification } = notifyBody(event, '@b:x', device, { unread: 0 }, ['notify']);
    assert.deepEqual(notification, {
      event_id: '$e',
      room_id: '!r:x',
      type: 'm.room.member',
      sender: '@a:x',
      prio: 'low',
      counts: {},
      devices: [{ app_id: 'app', pushkey: 'k', pushkey_ts: 1_700_000_000, data: {}, tweaks: {} }],
      user_is_target: true,
      content: { membership: 'invite' },
    });
  });

  it('encrypted events are high priority; event_id_only leaves the event out', () => {
    const { notification } = notifyBody(
      { ...event, type: 'm.room.encrypted', stateKey: undefined, content: { ciphertext: 'x' } },
      '@b:x',
      { ...device, data: { url: URL_OK, format: 'event_id_only' } },
      { unread: 3, missedCalls: 1 },
      ['notify'],
    );
    assert.deepEqual(notification, {
      event_id: '$e',
      room_id: '!r:x',
      counts: { unread: 3, missed_calls: 1 },
      prio: 'high',
      devices: [
        {
          app_id: 'app',
          pushkey: 'k',
          pushkey_ts: 1_700_000_000,
          data: { format: 'event_id_only' },
          tweaks: {},
        },
      ],
    });
  });
});
