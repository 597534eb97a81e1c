import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  addressRules,
  decodeHtml,
  isAddressAllowed,
  isValidRange,
  parseOpenGraph,
} from '../../src/core/url-preview.js';

describe('URL preview address rules', () => {
  const rules = addressRules(['203.0.114.0/24'], ['10.9.0.0/16']);
  const cases: [string, boolean][] = [
    ['93.184.215.14', true],
    ['2606:4700::1', true],
    ['127.0.0.1', false],
    ['127.255.255.254', false],
    ['10.0.0.1', false],
    ['10.9.3.4', true], // allowed range wins over the built-in denial
    ['172.31.255.255', false],
    ['172.32.0.1', true],
    ['192.168.0.1', false],
    ['169.254.169.254', false],
    ['100.64.0.1', false],
    ['224.0.0.1', false],
    ['0.0.0.0', false],
    ['203.0.114.7', false], // configured
    ['::1', false],
    ['::', false],
    ['::ffff:127.0.0.1', false], // IPv4-mapped: judged as IPv4
    ['::ffff:93.184.215.14', true],
    ['fd12::1', false],
    ['fe80::1', false],
    ['ff02::1', false],
    ['not an address', false],
  ];
  for (const [ip, expected] of cases) {
    it(`${ip} is ${expected ? 'allowed' : 'denied'}`, () => {
      assert.equal(isAddressAllowed(ip, rules), expected);
    });
  }
  it('validates configured ranges', () => {
    assert.equal(isValidRange('10.0.0.0/8'), true);
    assert.equal(isValidRange('::1'), true);
    assert.equal(isValidRange('10.0.0.0/33'), false);
    assert.equal(isValidRange('example.org'), false);
  });
});

describe('Open Graph parsing', () => {
  it('reads og:* tags first, makes the image absolute, keeps only http(s) images', () => {
    assert.deepEqual(
      parseOpenGraph(
        '<title>T</title><META PROPERTY="og:title" CONTENT="OG &lt;T&gt;"><meta property="og:image" content="../i.png">',
        'https://example.org/a/b/page.html',
      ),
      { 'og:title': 'OG <T>', 'og:image': 'https://example.org/a/i.png' },
    );
    assert.deepEqual(
      parseOpenGraph('<img src="javascript:alert(1)"><title>x</title>', 'https://example.org/'),
      { 'og:title': 'x' },
    );
  });
  it('falls back to the title, the meta description and the first image', () => {
    assert.deepEqual(
      parseOpenGraph(
        '<head><title>\n Page\t title </title><meta name="description" content="D"></head><img src="/a.jpg"><img src="/b.jpg">',
        'http://example.org/x',
      ),
      { 'og:title': 'Page title', 'og:description': 'D', 'og:image': 'http://example.org/a.jpg' },
    );
  });
  it('survives broken HTML', () => {
    assert.deepEqual(parseOpenGraph('<title>unclosed <meta property="og:x"', 'http://e.org/'), {
      'og:title': 'unclosed <meta property="og:x"',
    });
  });
  it('decodes by the header charset, then <meta charset>, then UTF-8', () => {
    const latin1 = Buffer.from('<title>\xe9t\xe9</title>', 'latin1');
    assert.equal(decodeHtml(latin1, 'text/html; charset=ISO-8859-1'), '<title>été</title>');
    const meta = Buffer.from('<meta charset="iso-8859-1"><p>\xe7a</p>', 'latin1');
    assert.match(decodeHtml(meta, 'text/html'), /ça/);
    assert.equal(decodeHtml(Buffer.from('é'), 'text/html; charset=bogus'), 'é');
  });
});
