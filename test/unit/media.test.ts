import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  chooseThumbnailSize,
  contentDisposition,
  isInlineSafe,
  isValidFileName,
  isValidMediaId,
  parseRange,
  servedContentType,
  storedContentType,
  thumbnailDimensions,
} from '../../src/core/media.js';

it('media IDs: only the spec alphabet', () => {
  for (const ok of ['abc', 'A-b_9', 'x'.repeat(255)]) assert.ok(isValidMediaId(ok), ok);
  for (const bad of ['', '..', 'a/b', 'a.b', 'a%2F', 'é', 'x'.repeat(256)])
    assert.ok(!isValidMediaId(bad), bad);
});

it('Content-Type: kept when well-formed, octet-stream otherwise; text gets a charset', () => {
  const cases: [string | undefined, string][] = [
    [undefined, 'application/octet-stream'],
    ['', 'application/octet-stream'],
    ['image/png', 'image/png'],
    ['text/plain; charset=latin1', 'text/plain; charset=latin1'],
    ['not a type', 'application/octet-stream'],
    ['text/html\r\nX-Evil: 1', 'application/octet-stream'],
  ];
  for (const [given, stored] of cases) assert.equal(storedContentType(given), stored, given);
  assert.equal(servedContentType('text/plain'), 'text/plain; charset=utf-8');
  assert.equal(servedContentType('text/plain; charset=latin1'), 'text/plain; charset=latin1');
  assert.equal(servedContentType('image/png'), 'image/png');
});

it('Content-Disposition: inline only for the safe list, names quoted or RFC 8187-encoded', () => {
  assert.ok(isInlineSafe('IMAGE/PNG; x=y'));
  assert.ok(!isInlineSafe('text/html'));
  assert.ok(!isInlineSafe('image/svg+xml'));
  const cases: [string, string | null, string][] = [
    ['image/png', null, 'inline'],
    ['text/html', null, 'attachment'],
    ['image/jpeg', 'a "b".jpg', 'inline; filename="a \\"b\\".jpg"'],
    ['application/pdf', 'r.pdf', 'attachment; filename="r.pdf"'],
    ['text/plain', 'naïve (1).txt', "inline; filename*=utf-8''na%C3%AFve%20%281%29.txt"],
  ];
  for (const [type, name, expected] of cases)
    assert.equal(contentDisposition(type, name), expected);
  assert.ok(isValidFileName('ok.txt'));
  assert.ok(!isValidFileName('a\nb'));
  assert.ok(!isValidFileName(''));
});

it('thumbnail sizes: the smallest standard size at least as large, never upscaled', () => {
  assert.deepEqual(chooseThumbnailSize(10, 10, 'crop'), { width: 32, height: 32, method: 'crop' });
  assert.deepEqual(chooseThumbnailSize(33, 10, 'crop'), { width: 96, height: 96, method: 'crop' });
  assert.deepEqual(chooseThumbnailSize(500, 500, 'crop'), {
    width: 96,
    height: 96,
    method: 'crop',
  });
  assert.deepEqual(chooseThumbnailSize(321, 10, 'scale'), {
    width: 640,
    height: 480,
    method: 'scale',
  });
  assert.deepEqual(chooseThumbnailSize(5000, 10, 'scale'), {
    width: 800,
    height: 600,
    method: 'scale',
  });
  const scale = { width: 320, height: 240, method: 'scale' } as const;
  const crop = { width: 96, height: 96, method: 'crop' } as const;
  assert.deepEqual(thumbnailDimensions({ width: 1000, height: 500 }, scale), {
    width: 320,
    height: 160,
  });
  assert.deepEqual(thumbnailDimensions({ width: 100, height: 50 }, scale), {
    width: 100,
    height: 50,
  });
  assert.deepEqual(thumbnailDimensions({ width: 1000, height: 500 }, crop), {
    width: 96,
    height: 96,
  });
  assert.deepEqual(thumbnailDimensions({ width: 60, height: 200 }, crop), {
    width: 60,
    height: 96,
  });
});

it('byte ranges', () => {
  const cases: [string | undefined, ReturnType<typeof parseRange>][] = [
    [undefined, null],
    ['bytes=0-3', { start: 0, end: 3 }],
    ['bytes=5-', { start: 5, end: 9 }],
    ['bytes=-4', { start: 6, end: 9 }],
    ['bytes=-40', { start: 0, end: 9 }],
    ['bytes=3-100', { start: 3, end: 9 }],
    ['bytes=10-', 'unsatisfiable'],
    ['bytes=-0', 'unsatisfiable'],
    ['bytes=5-3', null],
    ['bytes=0-1,3-4', null],
    ['items=0-1', null],
  ];
  for (const [header, expected] of cases)
    assert.deepEqual(parseRange(header, 10), expected, header);
});
