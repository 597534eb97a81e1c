import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  aliasInNamespace,
  checkRegistrations,
  isServiceUser,
  parseRegistration,
  RegistrationError,
  roomInNamespace,
  userInExclusiveNamespace,
} from '../../src/core/appservice.js';
import { loadAppServiceRegistrations } from '../../src/config/appservices.js';
import { ConfigError } from '../../src/config/load.js';
import { writeRegistrations } from '../helpers/appservice.js';

const base = {
  id: 'irc',
  url: 'http://127.0.0.1:9999/',
  as_token: 'as1',
  hs_token: 'hs1',
  sender_localpart: 'ircbot',
  namespaces: {
    users: [{ exclusive: true, regex: '@_irc_.*:example\\.org' }],
    aliases: [{ exclusive: false, regex: '#_irc_.*:example\\.org' }],
    rooms: [{ exclusive: false, regex: '!bridged:example\\.org' }],
  },
};

it('parses the registration format bridges generate, with defaults', () => {
  const r = parseRegistration(
    { ...base, 'de.sorunome.msc2409.push_ephemeral': true, 'org.matrix.msc3202': true },
    'irc.yaml',
  );
  assert.equal(r.url, 'http://127.0.0.1:9999');
  assert.equal(r.rateLimited, true);
  assert.equal(r.receiveEphemeral, true);
  assert.equal(r.msc3202, true);
  assert.equal(r.msc4190, false);
  assert.deepEqual(r.protocols, []);
  assert.equal(parseRegistration({ ...base, url: null }, 'x').url, null);
  assert.equal(parseRegistration({ ...base, receive_ephemeral: true }, 'x').receiveEphemeral, true);
});

it('matches namespaces as whole IDs', () => {
  const r = parseRegistration(base, 'irc.yaml');
  const cases: [string, boolean][] = [
    ['@_irc_alice:example.org', true],
    ['@ircbot:example.org', true],
    ['@alice:example.org', false],
    ['@_irc_alice:example.org.evil', false],
    ['x@_irc_alice:example.org', false],
  ];
  for (const [userId, expected] of cases)
    assert.equal(isServiceUser(r, userId, 'example.org'), expected, userId);
  assert.equal(userInExclusiveNamespace(r, '@_irc_bob:example.org'), true);
  assert.equal(userInExclusiveNamespace(r, '@ircbot:example.org'), false);
  assert.equal(aliasInNamespace(r, '#_irc_chan:example.org'), true);
  assert.equal(aliasInNamespace(r, '#_irc_chan:example.org', true), false);
  assert.equal(roomInNamespace(r, '!bridged:example.org'), true);
  assert.equal(roomInNamespace(r, '!other:example.org'), false);
});

it('refuses each malformed field with the file and the key in the message', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...base, id: '' }, /irc\.yaml: "id" must be a non-empty string/],
    [{ ...base, as_token: undefined }, /"as_token" must be a non-empty string/],
    [{ ...base, hs_token: 'as1' }, /"as_token" and "hs_token" must differ/],
    [{ ...base, url: 'ftp://x' }, /"url" must be an http\(s\) URL or null/],
    [{ ...base, sender_localpart: 'Bad Bot' }, /"sender_localpart" "Bad Bot" is not a valid/],
    [{ ...base, rate_limited: 'no' }, /"rate_limited" must be true or false/],
    [{ ...base, protocols: [1] }, /"protocols" must be a list of strings/],
    [{ ...base, namespaces: [] }, /"namespaces" must be a mapping/],
    [{ ...base, namespaces: { users: {} } }, /"namespaces.users" must be a list/],
    [
      { ...base, namespaces: { users: [{ regex: '@a.*' }] } },
      /namespaces.users\[0\]: "exclusive" must be true or false/,
    ],
    [
      { ...base, namespaces: { users: [{ exclusive: true, regex: '@_irc_(' }] } },
      /namespaces.users\[0\]: "regex" "@_irc_\(" is not a valid regular expression/,
    ],
  ];
  for (const [raw, message] of cases) {
    assert.throws(
      () => parseRegistration(raw, 'irc.yaml'),
      (err: unknown) => err instanceof RegistrationError && message.test(err.message),
      String(message),
    );
  }
  assert.throws(() => parseRegistration('id: x', 'a.yaml'), /a\.yaml: must hold a mapping/);
});

it('refuses duplicate ids, tokens and senders across files', () => {
  const a = parseRegistration(base, 'a.yaml');
  const entry = (file: string, raw: Record<string, unknown>) => ({
    file,
    registration: parseRegistration({ ...base, ...raw }, file),
  });
  const cases: [ReturnType<typeof entry>, RegExp][] = [
    [
      entry('b.yaml', { as_token: 'x', hs_token: 'y', sender_localpart: 'b' }),
      /b\.yaml: id "irc" is already used by a\.yaml/,
    ],
    [
      entry('b.yaml', { id: 'b', hs_token: 'y', sender_localpart: 'b' }),
      /b\.yaml: as_token is already used by a\.yaml/,
    ],
    [
      entry('b.yaml', { id: 'b', as_token: 'hs1', hs_token: 'y', sender_localpart: 'b' }),
      /b\.yaml: as_token is already used/,
    ],
    [
      entry('b.yaml', { id: 'b', as_token: 'x', hs_token: 'y' }),
      /sender_localpart "ircbot" is already used/,
    ],
  ];
  for (const [second, message] of cases) {
    assert.throws(() => checkRegistrations([{ file: 'a.yaml', registration: a }, second]), message);
  }
});

it('loads files, naming the file in each error (config errors stop the start)', () => {
  const good = writeRegistrations([{ ...base }]);
  assert.equal(loadAppServiceRegistrations([good])[0]?.id, 'irc');
  assert.throws(
    () => loadAppServiceRegistrations(['/nonexistent/reg.yaml']),
    (err: unknown) =>
      err instanceof ConfigError &&
      /cannot read registration \/nonexistent\/reg\.yaml/.test(err.message),
  );
  const twice = writeRegistrations([{ ...base }, { ...base, id: 'irc2' }]);
  assert.throws(
    () => loadAppServiceRegistrations(twice.split(',')),
    (err: unknown) =>
      err instanceof ConfigError && /irc2\.yaml: as_token is already used by/.test(err.message),
  );
});
