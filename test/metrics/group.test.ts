/**
 * Group gathering (lib/metrics/group.ts) with real forked workers: a scrape
 * at one worker returns every worker's row through the supervisor, a worker
 * that does not answer is reported absent within the timeout, an exited one
 * stays an absent row until replaced, and concurrent scrapes share rounds.
 */
import assert from 'node:assert/strict';
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { ConnectionClosedError } from '../../lib/errors.js';
import { answerMetrics } from '../../lib/metrics/group.js';
import { renderPrometheus } from '../../lib/metrics/prometheus.js';
import { isAbsent, type ProcessSnapshot, type WorkerSnapshot } from '../../lib/metrics/snapshot.js';

const CHILD = 'test/metrics/group-child.ts';
const children: ChildProcess[] = [];

function start(worker: string, env: Record<string, string> = {}): Promise<ChildProcess> {
  const child = fork(CHILD, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, ZS_WORKER: worker, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${worker} did not start within 20 s`)), 20_000);
    child.on('message', (m: { test?: string }) => {
      if (m?.test === 'ready') {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`worker ${worker} exited with ${code} before it was ready`)));
  });
}

function scrape(child: ChildProcess): Promise<WorkerSnapshot[]> {
  return new Promise((resolve) => {
    const on = (m: { test?: string; rows?: WorkerSnapshot[] }) => {
      if (m?.test !== 'rows') return;
      child.off('message', on);
      resolve(m.rows!);
    };
    child.on('message', on);
    child.send({ test: 'scrape' });
  });
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(children.map(exited));
});

describe('metrics of a worker group', () => {
  it('gathers every worker through the supervisor; a mute one is absent, an exited one too', async () => {
    const [w0, w1, w2] = await Promise.all([start('0', { ZS_TEST_CALLS: '3' }), start('1', { ZS_TEST_CALLS: '5' }), start('2', { ZS_TEST_MUTE: '1' })]);
    const group = answerMetrics([['0', w0], ['1', w1], ['2', w2]], { timeoutMs: 300 });
    try {
      const started = Date.now();
      const rows = await scrape(w1);
      assert.ok(Date.now() - started < 5000);
      assert.deepEqual(rows.map((r) => r.worker), ['0', '1', '2']);
      const [r0, r1, r2] = rows as [ProcessSnapshot, ProcessSnapshot, WorkerSnapshot];
      assert.equal(r0.pid, w0.pid);
      assert.equal(r1.pid, w1.pid);
      assert.equal(r0.stats.commands.echo!.calls, 3);
      assert.equal(r1.stats.commands.echo!.calls, 5);
      assert.ok(isAbsent(r2));
      assert.match(r2.reason, /no answer within 300 ms/);

      // One scrape's text holds every worker's series, labelled.
      const text = renderPrometheus(rows);
      assert.match(text, new RegExp(`zserver_command_calls_total\\{worker="0",pid="${w0.pid}",command="echo"\\} 3`));
      assert.match(text, new RegExp(`zserver_command_calls_total\\{worker="1",pid="${w1.pid}",command="echo"\\} 5`));
      assert.match(text, /zserver_up\{worker="2"\} 0/);

      // Concurrent scrapes at the supervisor share one round (same rows object contents, one timeout).
      const [a, b] = await Promise.all([group.gather(), group.gather()]);
      assert.deepEqual(a.map((r) => r.worker), b.map((r) => r.worker));

      // A worker that exits stays an absent row until its successor is added.
      w0.send({ test: 'exit' });
      await exited(w0);
      const afterExit = await scrape(w1);
      const gone = afterExit.find((r) => r.worker === '0')!;
      assert.ok(isAbsent(gone));
      assert.match(gone.reason, /exited/);
      group.remove('2');
      const fewer = await group.gather();
      assert.deepEqual(fewer.map((r) => r.worker), ['0', '1']);

      // Closed, it refuses further use with a clear error.
      group.close();
      await assert.rejects(group.gather(), ConnectionClosedError);
      assert.throws(() => group.add('9', w1), ConnectionClosedError);
    } finally {
      group.close();
      for (const c of [w0, w1, w2]) if (c.connected) c.send({ test: 'exit' });
      await Promise.all([w0, w1, w2].map(exited));
    }
  });

  it('a worker without a supervisor is a group of one', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, ZS_WORKER: 'solo', ZS_TEST_CALLS: '2' }, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as ProcessSnapshot[];
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.worker, 'solo');
    assert.equal(rows[0]!.stats.commands.echo!.calls, 2);
  });
});
