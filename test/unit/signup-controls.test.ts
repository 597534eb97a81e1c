/** The password policy and the validity of registration tokens, as pure rules. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MatrixError } from '../../src/core/errors.js';
import {
  NO_PASSWORD_POLICY,
  assertPasswordAllowed,
  passwordProblem,
  type PasswordPolicy,
} from '../../src/core/password-policy.js';
import { tokenIsValid } from '../../src/services/admin/registration-tokens.js';
import type { RegistrationTokenRow } from '../../src/storage/index.js';

describe('password policy', () => {
  const strict: PasswordPolicy = {
    minimumLength: 8,
    requireDigit: true,
    requireLowercase: true,
    requireUppercase: true,
    requireSymbol: true,
  };
  const cases: Array<[string, string, RegExp | null]> = [
    ['long enough with every class', 'Abcdef1!', null],
    ['too short', 'Ab1!', /at least 8/],
    ['no digit', 'Abcdefg!', /digit/],
    ['no lowercase', 'ABCDEF1!', /lowercase/],
    ['no uppercase', 'abcdef1!', /uppercase/],
    ['no symbol', 'Abcdefg1', /symbol/],
    ['length counted in characters, not bytes', 'Ééééé1!a', null],
    ['letters of other scripts count as letters', 'Ωmega12!ω', null],
  ];
  for (const [name, password, problem] of cases) {
    it(name, () => {
      const found = passwordProblem(strict, password);
      if (problem === null) assert.equal(found, null);
      else assert.match(found ?? '', problem);
    });
  }
  it('no policy takes anything; a refusal is 400 M_WEAK_PASSWORD', () => {
    assert.equal(passwordProblem(NO_PASSWORD_POLICY, 'x'), null);
    assert.throws(
      () => assertPasswordAllowed(strict, 'short'),
      (err: unknown) =>
        err instanceof MatrixError && err.status === 400 && err.errcode === 'M_WEAK_PASSWORD',
    );
  });
});

describe('registration token validity', () => {
  const token: RegistrationTokenRow = {
    token: 't',
    usesAllowed: null,
    pending: 0,
    completed: 0,
    expiryTime: null,
  };
  const cases: Array<[string, Partial<RegistrationTokenRow>, boolean]> = [
    ['unlimited, never expiring', {}, true],
    ['uses left', { usesAllowed: 2, completed: 1 }, true],
    ['used up', { usesAllowed: 2, completed: 2 }, false],
    ['used up counting pending', { usesAllowed: 2, completed: 1, pending: 1 }, false],
    ['no uses allowed', { usesAllowed: 0 }, false],
    ['expiring later', { expiryTime: 2000 }, true],
    ['expiring now', { expiryTime: 1000 }, false],
    ['expired', { expiryTime: 10 }, false],
  ];
  for (const [name, change, valid] of cases) {
    it(name, () => assert.equal(tokenIsValid({ ...token, ...change }, 1000), valid));
  }
});
