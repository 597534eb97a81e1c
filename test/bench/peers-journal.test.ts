/**
 * The peers bench's build journal: what a journal says has been done, a last line cut short
 * by a killed process, and when a build counts as finished.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { journalDone, openJournal, replay } from '../../bench/peers/journal.js';
import { ISSUE_SHAPE } from '../../bench/peers/dataset.js';

const journalFile = () => path.join(mkdtempSync(path.join(tmpdir(), 'peers-journal-')), 'j.jsonl');

it('replays accounts, rooms, joins, leaves, the at token and the time spent', () => {
  const lines = [
    { t: 'shape', shape: ISSUE_SHAPE },
    { t: 'account', name: 'owner', userId: '@owner:x', token: 'a' },
    { t: 'creating', key: 'big' },
    { t: 'room', key: 'big', roomId: '!big:x' },
    { t: 'creating', key: 'bot:0' },
    { t: 'joined', key: 'big', member: 'member_0' },
    { t: 'left', key: 'big', member: 'member_0' },
    { t: 'at', token: 's12' },
    { t: 'seconds', seconds: 40 },
  ];
  const state = replay(lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  assert.deepEqual(state.shape, ISSUE_SHAPE);
  assert.deepEqual(state.accounts.get('owner'), { userId: '@owner:x', token: 'a' });
  assert.equal(state.rooms.get('big'), '!big:x');
  assert.deepEqual([...state.pendingCreates], ['bot:0']);
  assert.ok(state.joined.has('big member_0'));
  assert.ok(state.left.has('big member_0'));
  assert.equal(state.atToken, 's12');
  assert.equal(state.seconds, 40);
  assert.equal(state.done, false);
  assert.equal(state.records, lines.length);
});

it('drops a last line cut short and carries on writing on a line of its own', () => {
  const file = journalFile();
  writeFileSync(file, `${JSON.stringify({ t: 'shape', shape: ISSUE_SHAPE })}\n{"t":"acc`);
  const journal = openJournal(file);
  assert.equal(journal.state.records, 1);
  journal.write({ t: 'account', name: 'owner', userId: '@owner:x', token: 'a' });
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  assert.equal(lines.length, 2);
  assert.equal(openJournal(file).state.accounts.get('owner')?.token, 'a');
});

it('refuses a journal broken before its last line', () => {
  assert.throws(() => replay('{"t":"shape"\n{"t":"done"}\n'), /journal line 1 is not JSON/);
});

it('counts a build finished only once its journal says done', () => {
  const file = journalFile();
  assert.equal(journalDone(file), false);
  const journal = openJournal(file);
  journal.write({ t: 'shape', shape: ISSUE_SHAPE });
  assert.equal(journalDone(file), false);
  appendFileSync(file, `${JSON.stringify({ t: 'done' })}\n`);
  assert.equal(journalDone(file), true);
});
