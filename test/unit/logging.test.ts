import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeDatabase, logFormatFor } from '../../src/main.js';

describe('log.format', () => {
  it('auto is pretty on a terminal and JSON otherwise; json and pretty are what they say', () => {
    assert.equal(logFormatFor('auto', true), 'pretty');
    assert.equal(logFormatFor('auto', false), 'json');
    assert.equal(logFormatFor('json', true), 'json');
    assert.equal(logFormatFor('pretty', false), 'pretty');
  });
});

describe('the database as logged', () => {
  it('keeps a SQLite path and hides a PostgreSQL password', () => {
    assert.equal(describeDatabase('sqlite:/srv/data/commons.db'), 'sqlite:/srv/data/commons.db');
    assert.equal(
      describeDatabase('postgres://commons:s3cret@db.example:5432/commons'),
      'postgres://commons:***@db.example:5432/commons',
    );
    assert.equal(
      describeDatabase('postgres://commons@127.0.0.1/commons'),
      'postgres://commons@127.0.0.1/commons',
    );
  });
});
