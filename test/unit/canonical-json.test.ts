import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  base64Unpadded,
  Base64Error,
  CanonicalJsonError,
  canonicalJson,
  compareByCodePoint,
  decodeBase64Unpadded,
  decodeUrlSafeBase64Unpadded,
  urlSafeBase64Unpadded,
} from '../../src/core/canonical-json.js';
import { MatrixError } from '../../src/core/errors.js';

describe('canonicalJson: the examples of the spec appendix', () => {
  // https://spec.matrix.org/v1.19/appendices/#examples (input as written there, output verbatim)
  const examples: [string, string][] = [
    ['{}', '{}'],
    ['{\n    "one": 1,\n    "two": "Two"\n}', '{"one":1,"two":"Two"}'],
    ['{\n    "b": "2",\n    "a": "1"\n}', '{"a":"1","b":"2"}'],
    ['{"b":"2","a":"1"}', '{"a":"1","b":"2"}'],
    [
      `{
    "auth": {
        "success": true,
        "mxid": "@john.doe:example.com",
        "profile": {
            "display_name": "John Doe",
            "three_pids": [
                {
                    "medium": "email",
                    "address": "john.doe@example.org"
                },
                {
                    "medium": "msisdn",
                    "address": "123456789"
                }
            ]
        }
    }
}`,
      '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ],
    ['{\n    "a": "日本語"\n}', '{"a":"日本語"}'],
    ['{\n    "本": 2,\n    "日": 1\n}', '{"日":1,"本":2}'],
    ['{\n    "a": "\\u65E5"\n}', '{"a":"日"}'],
    ['{\n    "a": null\n}', '{"a":null}'],
    ['{\n    "a": -0,\n    "b": 1e10\n}', '{"a":0,"b":10000000000}'],
  ];
  for (const [input, expected] of examples) {
    it(`encodes ${expected}`, () => {
      assert.equal(canonicalJson(JSON.parse(input)), expected);
    });
  }
});

describe('canonicalJson: strings', () => {
  it('escapes only what the grammar requires, with lowercase \\u00XX for other controls', () => {
    const s = '"\\\b\t\n\f\r\u0000\u0001\u000b\u001f\u007f\u2028/é😀';
    assert.equal(
      canonicalJson(s),
      '"\\"\\\\\\b\\t\\n\\f\\r\\u0000\\u0001\\u000b\\u001f\u007f\u2028/é😀"',
    );
  });

  it('rejects lone surrogates, which have no UTF-8 encoding', () => {
    assert.throws(() => canonicalJson({ a: '\ud800' }), CanonicalJsonError);
    assert.throws(() => canonicalJson({ ['\udc00']: 1 }), CanonicalJsonError);
  });

  it('sorts keys by code point, not by UTF-16 code unit', () => {
    // U+1F600 is encoded as surrogates (0xD83D…) that sort below U+FB01 by code unit.
    assert.equal(canonicalJson({ '\ufb01': 1, '😀': 2, a: 3 }), '{"a":3,"ﬁ":1,"😀":2}');
    assert.ok(compareByCodePoint('😀', '\ufb01') > 0);
    assert.ok(compareByCodePoint('a', 'ab') < 0);
    assert.equal(compareByCodePoint('x', 'x'), 0);
  });
});

describe('canonicalJson: numbers and other values', () => {
  it('accepts integers up to ±(2^53 - 1)', () => {
    assert.equal(
      canonicalJson([9007199254740991, -9007199254740991, 0]),
      '[9007199254740991,-9007199254740991,0]',
    );
  });

  it('rejects floats, unsafe integers, NaN and infinities with a typed 400 M_BAD_JSON error', () => {
    for (const bad of [1.5, 9007199254740992, -9007199254740992, Number.NaN, Infinity, -Infinity]) {
      assert.throws(
        () => canonicalJson({ content: { n: bad } }),
        (error: unknown) => {
          assert.ok(error instanceof CanonicalJsonError);
          assert.ok(error instanceof MatrixError);
          assert.equal(error.errcode, 'M_BAD_JSON');
          assert.equal(error.status, 400);
          assert.equal(error.path, 'content.n');
          return true;
        },
      );
    }
  });

  it('rejects values JSON cannot hold', () => {
    for (const bad of [
      undefined,
      () => 1,
      Symbol('x'),
      1n,
      new Date(0),
      new Map(),
      Buffer.from('x'),
    ]) {
      assert.throws(() => canonicalJson(bad), CanonicalJsonError);
    }
    assert.throws(() => canonicalJson([1, undefined]), CanonicalJsonError);
  });

  it('leaves out object properties that are undefined, and encodes nested arrays', () => {
    assert.equal(
      canonicalJson({ b: [true, false, null, []], a: undefined, c: {} }),
      '{"b":[true,false,null,[]],"c":{}}',
    );
  });

  it('accepts objects without a prototype', () => {
    const bare = Object.create(null) as Record<string, number>;
    bare['z'] = 1;
    assert.equal(canonicalJson(bare), '{"z":1}');
  });
});

describe('unpadded Base64', () => {
  // https://spec.matrix.org/v1.19/appendices/#unpadded-base64
  const examples: [string, string][] = [
    ['', ''],
    ['f', 'Zg'],
    ['fo', 'Zm8'],
    ['foo', 'Zm9v'],
    ['foob', 'Zm9vYg'],
    ['fooba', 'Zm9vYmE'],
    ['foobar', 'Zm9vYmFy'],
  ];
  for (const [plain, encoded] of examples) {
    it(`UNPADDED_BASE64(${JSON.stringify(plain)}) = ${JSON.stringify(encoded)}`, () => {
      assert.equal(base64Unpadded(Buffer.from(plain)), encoded);
      assert.equal(decodeBase64Unpadded(encoded).toString(), plain);
    });
  }

  it('decodes padded input too', () => {
    assert.equal(decodeBase64Unpadded('Zg==').toString(), 'f');
    assert.equal(decodeBase64Unpadded('Zm8=').toString(), 'fo');
  });

  it('encodes a view into a larger buffer correctly', () => {
    const big = Buffer.from('xxfooxx');
    assert.equal(base64Unpadded(big.subarray(2, 5)), 'Zm9v');
  });

  it('rejects malformed input', () => {
    for (const bad of ['Z', 'Zm9v!', 'Zm-_', 'Zg=', 'Z===', 'Zm 9v']) {
      assert.throws(() => decodeBase64Unpadded(bad), Base64Error, bad);
    }
  });

  it('URL-safe: uses - and _ and no padding', () => {
    const bytes = Buffer.from([0xfb, 0xff, 0xbf]);
    assert.equal(base64Unpadded(bytes), '+/+/');
    assert.equal(urlSafeBase64Unpadded(bytes), '-_-_');
    assert.equal(urlSafeBase64Unpadded(Buffer.from('f')), 'Zg');
    assert.deepEqual(decodeUrlSafeBase64Unpadded('-_-_'), bytes);
    assert.deepEqual(decodeUrlSafeBase64Unpadded('Zg=='), Buffer.from('f'));
    assert.throws(() => decodeUrlSafeBase64Unpadded('+/+/'), Base64Error);
  });
});
