/** The password policy, the validity of registration tokens and retention lifetimes, as pure rules. */
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
import { effectiveLifetime, type RetentionSettings } from '../../src/services/admin/retention.js';
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

describe('room retention lifetime', () => {
  const settings: RetentionSettings = {
    enabled: true,
    defaultMaxLifetimeMs: 1000,
    minLifetimeMs: 100,
    maxLifetimeMs: 5000,
    intervalSeconds: 60,
  };
  const cases: Array<[string, unknown, Partial<RetentionSettings>, number | null]> = [
    ['the room has none: the default', undefined, {}, 1000],
    ["the room's own", 2000, {}, 2000],
    ['raised to the minimum', 10, {}, 100],
    ['cut to the maximum', 10_000, {}, 5000],
    ['no maximum', 10_000, { maxLifetimeMs: null }, 10_000],
    ['not a number: the default', 'forever', {}, 1000],
    ['no default and none of its own: kept', undefined, { defaultMaxLifetimeMs: null }, null],
  ];
  for (const [name, own, change, expected] of cases) {
    it(name, () => assert.equal(effectiveLifetime({ ...settings, ...change }, own), expected));
  }
});
