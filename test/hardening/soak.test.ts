/**
 * The short variant of bench/soak.ts: 500 connections for 10 s (470 honest,
 * 25 slow readers that never read, 5 hostile peers sending garbage) with calls,
 * pushes, big streams and reconnect churn. Asserts that no call is lost or
 * answered wrongly, that no server or client process crashed, that traffic of
 * every kind flowed, and that the hostile peers were closed for their garbage
 * ('bad-token' or 'protocol').
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { runSoak, summarize } from '../../bench/soak.js';

it('soak: 500 connections for 10 s lose no call and crash nothing; garbage peers are closed', { timeout: 180_000 }, async () => {
  const lines: string[] = [];
  const r = await runSoak({ minutes: 10 / 60, connections: 500, transport: 'native', reportEvery: 10, print: (l) => lines.push(l) });
  const what = [...lines, ...summarize(r)].join('\n');
  assert.deepEqual(r.crashes, [], what);
  assert.equal(r.calls.lost, 0, what);
  assert.equal(r.calls.wrong, 0, what);
  assert.equal(r.calls.untyped, 0, what);
  assert.ok(r.calls.answered > 200, `too few calls answered:\n${what}`);
  assert.ok(r.bigStreams.answered > 0, `no big stream answered:\n${what}`);
  assert.ok(r.pushes > 0, `no server push received:\n${what}`);
  assert.ok(r.reconnects > 0, `no reconnect churn:\n${what}`);
  const hostile = Object.entries(r.hostileClosed.server);
  assert.ok(hostile.length > 0, `no hostile peer was closed:\n${what}`);
  for (const [reason] of hostile) assert.ok(reason === 'bad-token' || reason === 'protocol', `hostile peer closed with '${reason}':\n${what}`);
  assert.ok(r.hostileClosed.connects >= r.connections.hostile, what);
});
