import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateSigningKey } from '../../src/core/signing.js';
import { parseXMatrixHeader, verifyXMatrix, xMatrixHeader } from '../../src/core/x-matrix.js';

const key = generateSigningKey();
const other = generateSigningKey();
const request = {
  method: 'POST',
  uri: '/_matrix/federation/v1/query/profile?user_id=%40a%3Aorigin.example',
  origin: 'origin.example',
  destination: 'dest.example:8448',
  content: { hello: ['world', 1] },
};

describe('X-Matrix request signatures', () => {
  it('signs a request so that the receiver verifies it', () => {
    const auth = parseXMatrixHeader(xMatrixHeader(request, key));
    assert.ok(auth);
    assert.equal(auth.origin, 'origin.example');
    assert.equal(auth.destination, 'dest.example:8448');
    assert.equal(auth.key, key.keyId);
    assert.ok(verifyXMatrix(auth, request, key.publicKey));
  });

  it('signs requests without a body (no content field)', () => {
    const get = {
      method: request.method,
      uri: request.uri,
      origin: request.origin,
      destination: request.destination,
    };
    const auth = parseXMatrixHeader(xMatrixHeader({ ...get, method: 'GET' }, key));
    assert.ok(auth);
    assert.ok(verifyXMatrix(auth, { ...get, method: 'GET' }, key.publicKey));
    assert.ok(!verifyXMatrix(auth, { ...get, method: 'GET', content: {} }, key.publicKey));
  });

  const changes: [string, Partial<typeof request>][] = [
    ['another method', { method: 'PUT' }],
    ['another uri', { uri: '/_matrix/federation/v1/query/directory' }],
    ['another destination', { destination: 'elsewhere.example' }],
    ['another body', { content: { hello: ['world', 2] } }],
  ];
  for (const [what, change] of changes) {
    it(`refuses the signature for ${what}`, () => {
      const auth = parseXMatrixHeader(xMatrixHeader(request, key));
      assert.ok(auth);
      assert.ok(!verifyXMatrix(auth, { ...request, ...change }, key.publicKey));
    });
  }

  it('refuses a signature checked against another key, or made by another origin', () => {
    const auth = parseXMatrixHeader(xMatrixHeader(request, key));
    assert.ok(auth);
    assert.ok(!verifyXMatrix(auth, request, other.publicKey));
    assert.ok(!verifyXMatrix({ ...auth, origin: 'evil.example' }, request, key.publicKey));
    assert.ok(!verifyXMatrix({ ...auth, sig: 'not base64!' }, request, key.publicKey));
  });
});

describe('X-Matrix header parsing', () => {
  it('reads quoted and bare values, any case of names, spaces around commas', () => {
    assert.deepEqual(
      parseXMatrixHeader(
        'X-Matrix  ORIGIN=origin.example:8448 , Destination="d.example",key="ed25519:a1"\t,\tsig=abc',
      ),
      { origin: 'origin.example:8448', destination: 'd.example', key: 'ed25519:a1', sig: 'abc' },
    );
  });

  it('undoes backslash escapes in quoted values and ignores unknown parameters', () => {
    assert.deepEqual(
      parseXMatrixHeader('x-matrix origin="o\\"x",key="ed25519:a",sig="s",extra="1"'),
      { origin: 'o"x', destination: null, key: 'ed25519:a', sig: 's' },
    );
  });

  const bad = [
    'Bearer abc',
    'X-Matrix',
    'X-Matrix origin="o",key="ed25519:a"',
    'X-Matrix origin="o",sig="s"',
    'X-Matrix key="ed25519:a",sig="s"',
    'X-Matrix origin="o,key="ed25519:a",sig="s"',
    'X-Matrix origin="o" key="k",sig="s"',
    'X-Matrix =x,origin="o",key="k",sig="s"',
  ];
  for (const header of bad) {
    it(`refuses ${JSON.stringify(header)}`, () => {
      assert.equal(parseXMatrixHeader(header), null);
    });
  }
});
