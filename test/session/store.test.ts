/**
 * SqliteSessionStore (WAL, versioned schema, users, stored messages), password records and the
 * bounded AttemptLimiter.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { hashPassword, verifyPassword } from '../../lib/session/password.js';
import { MIGRATIONS, SqliteSessionStore } from '../../lib/session/sqlite.js';
import { AttemptLimiter } from '../../lib/session/throttle.js';
import { TEST_COST } from './helpers.js';

describe('SqliteSessionStore', () => {
  it('opens a file in WAL mode, applies the migrations once, and keeps data across reopening', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zs-store-'));
    try {
      const path = join(dir, 's.db');
      let store = new SqliteSessionStore({ path });
      assert.equal(store.journalMode(), 'wal');
      assert.deepEqual(store.schemaVersions(), MIGRATIONS.map((m) => m.version));
      assert.equal(await store.createUser({ name: 'a', password: 'x', roles: ['r'], created: 1 }), true);
      assert.equal(await store.createUser({ name: 'a', password: 'y', roles: [], created: 2 }), false);
      assert.equal(await store.enqueue('a', 'm', new Uint8Array([1, 2]), 5, 10), 1);
      store.close();
      assert.throws(() => store.schemaVersions(), /closed/);
      await assert.rejects(store.getUser('a'), /closed/);
      store = new SqliteSessionStore({ path });
      assert.deepEqual(store.schemaVersions(), MIGRATIONS.map((m) => m.version)); // not applied twice
      assert.deepEqual(await store.getUser('a'), { name: 'a', password: 'x', roles: ['r'], created: 1 });
      const [m] = await store.pending('a', 0, 10);
      assert.equal(m!.name, 'm');
      assert.deepEqual([...m!.body], [1, 2]);
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stores messages up to max, lists them in order after an id, acknowledges up to an id, deletes them with the user', async () => {
    const store = new SqliteSessionStore();
    await store.createUser({ name: 'u', password: 'x', roles: [], created: 0 });
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) ids.push((await store.enqueue('u', `m${i}`, new Uint8Array([i]), i, 4))!);
    assert.equal(await store.enqueue('u', 'over', new Uint8Array(), 0, 4), null);
    assert.deepEqual((await store.pending('u', ids[1]!, 10)).map((m) => m.name), ['m2', 'm3']);
    assert.equal(await store.ack('u', ids[1]!), 2);
    assert.equal(await store.pendingCount('u'), 2);
    assert.equal(await store.setPassword('u', 'y'), true);
    assert.equal(await store.setPassword('nobody', 'y'), false);
    assert.equal(await store.deleteUser('u'), true);
    assert.equal(await store.pendingCount('u'), 0);
    store.close();
  });
});

describe('password records', () => {
  it('salted scrypt: two records of one password differ, both verify, a wrong password and a malformed record do not', async () => {
    const a = await hashPassword('sesame', TEST_COST);
    const b = await hashPassword('sesame', TEST_COST);
    assert.notEqual(a, b);
    assert.equal(await verifyPassword('sesame', a), true);
    assert.equal(await verifyPassword('sesame', b), true);
    assert.equal(await verifyPassword('Sesame', a), false);
    assert.equal(await verifyPassword('sesame', 'scrypt$3$8$1$AAAA$AAAA'), false);
    assert.equal(await verifyPassword('sesame', 'plain'), false);
  });
});

describe('AttemptLimiter', () => {
  it('blocks a key at max failures until its window ends, and never tracks more than maxKeys', () => {
    const l = new AttemptLimiter(3, 1000, 100);
    for (let i = 0; i < 3; i++) l.fail('k', 0);
    assert.equal(l.blocked('k', 500), true);
    assert.equal(l.blocked('k', 1000), false);
    for (let i = 0; i < 10_000; i++) l.fail(`flood${i}`, 2000);
    assert.equal(l.size, 100);
    l.fail('x', 2000);
    l.reset('x');
    assert.equal(l.blocked('x', 2000), false);
  });
});
