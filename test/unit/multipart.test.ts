import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  dispositionFileName,
  multipartBoundary,
  multipartFrame,
  parseMultipart,
} from '../../src/core/multipart.js';

describe('multipart/mixed', () => {
  it('reads the boundary of a multipart/mixed type only', () => {
    assert.equal(multipartBoundary('multipart/mixed; boundary=abc'), 'abc');
    assert.equal(multipartBoundary('Multipart/Mixed; charset=x; boundary="a b"'), null);
    assert.equal(
      multipartBoundary('multipart/mixed; boundary="gc0p4Jq0M2Yt08j"'),
      'gc0p4Jq0M2Yt08j',
    );
    assert.equal(multipartBoundary('multipart/form-data; boundary=abc'), null);
    assert.equal(multipartBoundary('multipart/mixed'), null);
    assert.equal(multipartBoundary(undefined), null);
  });

  it('round-trips a frame built around bytes (which may hold CRLFs and dashes)', () => {
    const bytes = Buffer.from('\r\n--not-the-boundary\r\n\x00\xff', 'latin1');
    const { prefix, suffix } = multipartFrame('b0und', {}, { 'Content-Type': 'image/png' });
    const parts = parseMultipart(Buffer.concat([prefix, bytes, suffix]), 'b0und');
    assert.ok(parts);
    assert.equal(parts.length, 2);
    assert.deepEqual(parts[0]?.headers, { 'content-type': 'application/json' });
    assert.equal(parts[0]?.body.toString(), '{}');
    assert.deepEqual(parts[1]?.headers, { 'content-type': 'image/png' });
    assert.deepEqual(parts[1]?.body, bytes);
  });

  it('parses a body with a preamble, an epilogue and a Location part without a body', () => {
    const body = Buffer.from(
      'preamble\r\n--x\r\nContent-Type: application/json\r\n\r\n{"a":1}\r\n--x\r\nLocation: https://e.org/m\r\n\r\n\r\n--x--\r\nepilogue',
    );
    const parts = parseMultipart(body, 'x');
    assert.deepEqual(
      parts?.map((p) => [p.headers, p.body.toString()]),
      [
        [{ 'content-type': 'application/json' }, '{"a":1}'],
        [{ location: 'https://e.org/m' }, ''],
      ],
    );
  });

  it('refuses what is not well formed', () => {
    assert.equal(parseMultipart(Buffer.from('no delimiter'), 'x'), null);
    assert.equal(parseMultipart(Buffer.from('--x\r\nContent-Type: a\r\n\r\nunclosed'), 'x'), null);
    assert.equal(parseMultipart(Buffer.from('--x\r\nbad header\r\n\r\nb\r\n--x--'), 'x'), null);
  });

  it('reads the file name of a Content-Disposition', () => {
    assert.equal(dispositionFileName('inline; filename="a b.png"'), 'a b.png');
    assert.equal(dispositionFileName('attachment; filename=plain.txt'), 'plain.txt');
    assert.equal(
      dispositionFileName('attachment; filename="x"; filename*=utf-8\'\'r%C3%A9sum%C3%A9.txt'),
      'résumé.txt',
    );
    assert.equal(dispositionFileName('inline'), null);
    assert.equal(dispositionFileName(undefined), null);
  });
});
