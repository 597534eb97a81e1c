import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  parseServerName,
  parseWellKnownServer,
  resolveServerName,
  wellKnownErrorTtlMs,
  wellKnownTtlMs,
  type DiscoveryResolver,
  type SrvTarget,
} from '../../src/core/server-discovery.js';

/** A resolver from tables; records what was asked, in order. */
function fakeResolver(
  wellKnown: Record<string, string>,
  srv: Record<string, SrvTarget[]>,
): DiscoveryResolver & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    async wellKnown(host) {
      asked.push(`well-known ${host}`);
      return wellKnown[host] ?? null;
    },
    async srv(name) {
      asked.push(`srv ${name}`);
      return srv[name] ?? [];
    },
  };
}

const srv = (name: string, port: number, priority = 10, weight = 5): SrvTarget => ({
  name,
  port,
  priority,
  weight,
});

describe('server discovery, in the spec order', () => {
  const cases: {
    name: string;
    server: string;
    wellKnown?: Record<string, string>;
    srv?: Record<string, SrvTarget[]>;
    expect: {
      connectHost: string;
      port: number;
      hostHeader: string;
      tlsName: string;
      step: string;
    };
    asked: string[];
  }[] = [
    {
      name: '1. an IPv4 literal without port: 8448, nothing looked up',
      server: '192.0.2.1',
      expect: {
        connectHost: '192.0.2.1',
        port: 8448,
        hostHeader: '192.0.2.1',
        tlsName: '192.0.2.1',
        step: 'ip-literal',
      },
      asked: [],
    },
    {
      name: '1. an IPv6 literal with port',
      server: '[2001:db8::1]:8449',
      expect: {
        connectHost: '2001:db8::1',
        port: 8449,
        hostHeader: '[2001:db8::1]:8449',
        tlsName: '2001:db8::1',
        step: 'ip-literal',
      },
      asked: [],
    },
    {
      name: '2. a hostname with an explicit port: no well-known, no SRV',
      server: 'example.org:1234',
      wellKnown: { 'example.org': 'other.example:443' },
      expect: {
        connectHost: 'example.org',
        port: 1234,
        hostHeader: 'example.org:1234',
        tlsName: 'example.org',
        step: 'explicit-port',
      },
      asked: [],
    },
    {
      name: '3.1 well-known delegating to an IP literal',
      server: 'example.org',
      wellKnown: { 'example.org': '192.0.2.7:9000' },
      expect: {
        connectHost: '192.0.2.7',
        port: 9000,
        hostHeader: '192.0.2.7:9000',
        tlsName: '192.0.2.7',
        step: 'well-known-ip-literal',
      },
      asked: ['well-known example.org'],
    },
    {
      name: '3.2 well-known delegating with a port: no SRV',
      server: 'example.org',
      wellKnown: { 'example.org': 'matrix.example.org:443' },
      srv: { '_matrix-fed._tcp.matrix.example.org': [srv('x.example', 1)] },
      expect: {
        connectHost: 'matrix.example.org',
        port: 443,
        hostHeader: 'matrix.example.org:443',
        tlsName: 'matrix.example.org',
        step: 'well-known-explicit-port',
      },
      asked: ['well-known example.org'],
    },
    {
      name: '3.3 well-known without port, then _matrix-fed._tcp of the delegate',
      server: 'example.org',
      wellKnown: { 'example.org': 'matrix.example.org' },
      srv: {
        '_matrix-fed._tcp.matrix.example.org': [
          srv('b.example.', 8000, 20),
          srv('a.example.', 8001, 10),
        ],
        '_matrix._tcp.matrix.example.org': [srv('old.example', 1)],
      },
      expect: {
        connectHost: 'a.example',
        port: 8001,
        hostHeader: 'matrix.example.org',
        tlsName: 'matrix.example.org',
        step: 'well-known-srv',
      },
      asked: ['well-known example.org', 'srv _matrix-fed._tcp.matrix.example.org'],
    },
    {
      name: '3.4 then the deprecated _matrix._tcp of the delegate',
      server: 'example.org',
      wellKnown: { 'example.org': 'matrix.example.org' },
      srv: { '_matrix._tcp.matrix.example.org': [srv('old.example', 8002)] },
      expect: {
        connectHost: 'old.example',
        port: 8002,
        hostHeader: 'matrix.example.org',
        tlsName: 'matrix.example.org',
        step: 'well-known-srv-deprecated',
      },
      asked: [
        'well-known example.org',
        'srv _matrix-fed._tcp.matrix.example.org',
        'srv _matrix._tcp.matrix.example.org',
      ],
    },
    {
      name: '3.5 then the delegate on 8448',
      server: 'example.org',
      wellKnown: { 'example.org': 'matrix.example.org' },
      expect: {
        connectHost: 'matrix.example.org',
        port: 8448,
        hostHeader: 'matrix.example.org',
        tlsName: 'matrix.example.org',
        step: 'well-known-default-port',
      },
      asked: [
        'well-known example.org',
        'srv _matrix-fed._tcp.matrix.example.org',
        'srv _matrix._tcp.matrix.example.org',
      ],
    },
    {
      name: '4. no well-known: _matrix-fed._tcp of the server name',
      server: 'example.org',
      srv: { '_matrix-fed._tcp.example.org': [srv('fed.example', 8003)] },
      expect: {
        connectHost: 'fed.example',
        port: 8003,
        hostHeader: 'example.org',
        tlsName: 'example.org',
        step: 'srv',
      },
      asked: ['well-known example.org', 'srv _matrix-fed._tcp.example.org'],
    },
    {
      name: '5. then the deprecated _matrix._tcp',
      server: 'example.org',
      srv: { '_matrix._tcp.example.org': [srv('old.example', 8004)] },
      expect: {
        connectHost: 'old.example',
        port: 8004,
        hostHeader: 'example.org',
        tlsName: 'example.org',
        step: 'srv-deprecated',
      },
      asked: [
        'well-known example.org',
        'srv _matrix-fed._tcp.example.org',
        'srv _matrix._tcp.example.org',
      ],
    },
    {
      name: '6. then the server name on 8448',
      server: 'example.org',
      expect: {
        connectHost: 'example.org',
        port: 8448,
        hostHeader: 'example.org',
        tlsName: 'example.org',
        step: 'default-port',
      },
      asked: [
        'well-known example.org',
        'srv _matrix-fed._tcp.example.org',
        'srv _matrix._tcp.example.org',
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const resolver = fakeResolver(c.wellKnown ?? {}, c.srv ?? {});
      assert.deepEqual(await resolveServerName(c.server, resolver), c.expect);
      assert.deepEqual(resolver.asked, c.asked);
    });
  }

  it('refuses names that are not server names', async () => {
    for (const bad of [
      '',
      'a b',
      'example.org:0',
      'example.org:70000',
      '[::1',
      '::1',
      '[nothex]',
    ]) {
      assert.equal(parseServerName(bad), null, bad);
      await assert.rejects(resolveServerName(bad, fakeResolver({}, {})));
    }
  });
});

describe('well-known answers and their caching', () => {
  it('reads m.server, refusing invalid answers', () => {
    assert.equal(
      parseWellKnownServer({ 'm.server': 'matrix.example.org:443' }),
      'matrix.example.org:443',
    );
    assert.equal(parseWellKnownServer({ 'm.server': 'bad name' }), null);
    assert.equal(parseWellKnownServer({ 'm.server': 1 }), null);
    assert.equal(parseWellKnownServer({}), null);
    assert.equal(parseWellKnownServer('x'), null);
  });

  it('keeps answers per Cache-Control: 24 h by default, at most 48 h', () => {
    assert.equal(wellKnownTtlMs(null), 24 * 3600_000);
    assert.equal(wellKnownTtlMs('public, max-age=600'), 600_000);
    assert.equal(wellKnownTtlMs('max-age=999999999'), 48 * 3600_000);
    assert.equal(wellKnownTtlMs('no-store'), 0);
    assert.equal(wellKnownTtlMs('private'), 24 * 3600_000);
  });

  it('remembers failures for longer each time, up to an hour', () => {
    assert.equal(wellKnownErrorTtlMs(1), 60_000);
    assert.equal(wellKnownErrorTtlMs(2), 120_000);
    assert.equal(wellKnownErrorTtlMs(50), 3600_000);
  });
});
