import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { JsonObject } from '../../src/core/pdu.js';
import {
  globToRegExp,
  hostOfServerName,
  isServerAllowed,
  parseServerAcl,
} from '../../src/core/server-acl.js';

/** The spec's example `m.room.server_acl` content. */
const SPEC_EXAMPLE: JsonObject = {
  allow_ip_literals: false,
  allow: ['*'],
  deny: ['*.evil.com', 'evil.com'],
};

interface Case {
  readonly name: string;
  readonly content: JsonObject | undefined;
  readonly server: string;
  readonly allowed: boolean;
}

const CASES: readonly Case[] = [
  { name: 'no ACL: everyone', content: undefined, server: 'evil.com', allowed: true },
  {
    name: 'spec example: an ordinary server',
    content: SPEC_EXAMPLE,
    server: 'good.org',
    allowed: true,
  },
  { name: 'spec example: evil.com', content: SPEC_EXAMPLE, server: 'evil.com', allowed: false },
  {
    name: 'spec example: a port does not matter (8448)',
    content: SPEC_EXAMPLE,
    server: 'evil.com:8448',
    allowed: false,
  },
  {
    name: 'spec example: a port does not matter (1234)',
    content: SPEC_EXAMPLE,
    server: 'evil.com:1234',
    allowed: false,
  },
  {
    name: 'spec example: a subdomain',
    content: SPEC_EXAMPLE,
    server: 'chat.evil.com',
    allowed: false,
  },
  {
    name: 'spec example: a lookalike is not a subdomain',
    content: SPEC_EXAMPLE,
    server: 'notevil.com',
    allowed: true,
  },
  {
    name: 'spec example: matching ignores case',
    content: SPEC_EXAMPLE,
    server: 'EVIL.com',
    allowed: false,
  },
  {
    name: 'spec example: an IPv4 literal',
    content: SPEC_EXAMPLE,
    server: '192.0.2.1',
    allowed: false,
  },
  {
    name: 'spec example: an IPv4 literal with a port',
    content: SPEC_EXAMPLE,
    server: '192.0.2.1:8448',
    allowed: false,
  },
  {
    name: 'spec example: an IPv6 literal',
    content: SPEC_EXAMPLE,
    server: '[2001:db8::1]:8448',
    allowed: false,
  },
  {
    name: 'IP literals allowed when allow_ip_literals is missing',
    content: { allow: ['*'] },
    server: '192.0.2.1',
    allowed: true,
  },
  {
    name: 'allow_ip_literals that is not a boolean counts as true',
    content: { allow: ['*'], allow_ip_literals: 'no' },
    server: '[::1]',
    allowed: true,
  },
  {
    name: 'no allow list: nobody, not even the sender',
    content: { deny: [] },
    server: 'good.org',
    allowed: false,
  },
  {
    name: 'an allow list that is not an array: nobody',
    content: { allow: '*' },
    server: 'good.org',
    allowed: false,
  },
  {
    name: 'deny beats allow',
    content: { allow: ['good.org'], deny: ['good.org'] },
    server: 'good.org',
    allowed: false,
  },
  {
    name: 'an exact allow',
    content: { allow: ['good.org'] },
    server: 'good.org:443',
    allowed: true,
  },
  {
    name: 'not on the allow list',
    content: { allow: ['good.org'] },
    server: 'other.org',
    allowed: false,
  },
  {
    name: '? is exactly one character',
    content: { allow: ['s?.org'] },
    server: 's1.org',
    allowed: true,
  },
  {
    name: '? is not zero characters',
    content: { allow: ['s?.org'] },
    server: 's.org',
    allowed: false,
  },
  {
    name: '? is not two characters',
    content: { allow: ['s?.org'] },
    server: 's12.org',
    allowed: false,
  },
  { name: '* may be empty', content: { allow: ['a*.org'] }, server: 'a.org', allowed: true },
  {
    name: 'hyphens are literal',
    content: { allow: ['my-server.org'] },
    server: 'my-server.org',
    allowed: true,
  },
  { name: 'dots are literal', content: { allow: ['a.org'] }, server: 'aborg', allowed: false },
  {
    name: 'regular expression characters are literal',
    content: { allow: ['(a|b).org'] },
    server: 'a.org',
    allowed: false,
  },
  {
    name: 'non-string entries are ignored',
    content: { allow: [5, null, 'x.org'] },
    server: 'x.org',
    allowed: true,
  },
];

describe('server ACLs', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const acl = c.content === undefined ? undefined : parseServerAcl(c.content);
      assert.equal(isServerAllowed(c.server, acl), c.allowed);
    });
  }

  it('strips ports from server names', () => {
    assert.equal(hostOfServerName('example.org'), 'example.org');
    assert.equal(hostOfServerName('example.org:8448'), 'example.org');
    assert.equal(hostOfServerName('[::1]:8448'), '[::1]');
    assert.equal(hostOfServerName('[::1]'), '[::1]');
  });

  it('compiles globs anchored at both ends', () => {
    assert.equal(globToRegExp('*.org').test('a.org.evil'), false);
    assert.equal(globToRegExp('*.org').test('a.b.org'), true);
  });
});
