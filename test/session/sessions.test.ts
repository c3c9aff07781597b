/**
 * lib/session over Node net: users (register, login, logout, change password, delete), the
 * login throttle, guards and middleware, one login per user, stored messages, server time.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { BusyError, LimitError, RateLimitedError, RemoteError } from '../../lib/errors.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import type { SessionMessage } from '../../lib/session/client.js';
import { rig, until } from './helpers.js';

function code(err: unknown): string {
  return (err as RemoteError).remoteCode ?? (err as { code: string }).code;
}

describe('users', () => {
  it('registers, logs in, changes the password, logs out and deletes the account', async () => {
    const r = await rig();
    try {
      const a = await r.client();
      await a.register('alice', 'pw1');
      await assert.rejects(a.register('alice', 'other'), (e) => code(e) === 'ZS_USER_EXISTS');
      await assert.rejects(a.login('alice', 'wrong'), (e) => code(e) === 'ZS_UNAUTHENTICATED');
      await assert.rejects(a.login('nobody', 'pw1'), (e) => code(e) === 'ZS_UNAUTHENTICATED');
      assert.deepEqual(await a.login('alice', 'pw1'), { user: 'alice', roles: [] });
      assert.equal(r.sessions.session(r.server.peers().next().value!)?.user, 'alice');
      await assert.rejects(a.changePassword('wrong', 'pw2'), (e) => code(e) === 'ZS_UNAUTHENTICATED');
      await a.changePassword('pw1', 'pw2');
      await a.logout();
      assert.equal(r.sessions.count, 0);
      await assert.rejects(a.login('alice', 'pw1'), (e) => code(e) === 'ZS_UNAUTHENTICATED');
      await a.login('alice', 'pw2');
      const stored = await r.store.getUser('alice');
      assert.match(stored!.password, /^scrypt\$1024\$8\$1\$/);
      assert.ok(!stored!.password.includes('pw2'));
      await a.deleteAccount('pw2');
      assert.equal(await r.store.getUser('alice'), undefined);
      assert.equal(r.sessions.count, 0);
    } finally {
      await r.close();
    }
  });

  it('refuses a user name with control characters or a password over 1024 characters', async () => {
    const r = await rig();
    try {
      const a = await r.client();
      await assert.rejects(a.register('a\u0001b', 'pw'), /control characters/);
      await assert.rejects(a.register('bob', 'x'.repeat(1025)), /1 to 1024/);
    } finally {
      await r.close();
    }
  });
});

describe('login throttle', () => {
  it('refuses a user after perUser failures, even with the right password, and an address after perIp', async () => {
    const r = await rig({ login: { perUser: 3, perIp: 6 } });
    try {
      const a = await r.client();
      await r.sessions.createUser('carol', 'right');
      await r.sessions.createUser('dave', 'right');
      for (let i = 0; i < 3; i++) await assert.rejects(a.login('carol', 'bad'), (e) => code(e) === 'ZS_UNAUTHENTICATED');
      await assert.rejects(a.login('carol', 'right'), (e) => e instanceof RateLimitedError);
      // dave's own counter is fresh, but the address has 3 failures; 3 more use it up.
      for (let i = 0; i < 3; i++) await assert.rejects(a.login('dave', 'bad' + i), (e) => code(e) === 'ZS_UNAUTHENTICATED');
      await assert.rejects(a.login('dave', 'right'), (e) => e instanceof RateLimitedError);
    } finally {
      await r.close();
    }
  });

  it('refuses logins beyond login.maxPending hashing at once with ZS_BUSY', async () => {
    // The default scrypt cost (tens of ms a hash), so the logins of the three clients surely overlap.
    const r = await rig({ login: { maxPending: 1 }, scrypt: { N: 16384, r: 8, p: 1 } });
    try {
      await r.sessions.createUser('zed', 'pw');
      const clients = await Promise.all([r.client(), r.client(), r.client()]);
      const results = await Promise.allSettled(clients.map((c) => c.login('zed', 'pw')));
      assert.ok(results.some((x) => x.status === 'fulfilled'));
      assert.ok(results.some((x) => x.status === 'rejected' && x.reason instanceof BusyError), JSON.stringify(results.map((x) => x.status)));
    } finally {
      await r.close();
    }
  });

  it('lets one login of a connection hash at a time', async () => {
    const r = await rig();
    try {
      const a = await r.client();
      await r.sessions.createUser('erin', 'pw');
      const results = await Promise.allSettled([a.login('erin', 'pw'), a.login('erin', 'pw')]);
      assert.equal(results.filter((x) => x.status === 'fulfilled').length, 1);
      const refused = results.find((x) => x.status === 'rejected') as PromiseRejectedResult;
      assert.ok(refused.reason instanceof RateLimitedError);
    } finally {
      await r.close();
    }
  });
});

describe('guards and middleware', () => {
  it('runs only public commands before login, checks roles, and runs middleware in order', async () => {
    const r = await rig();
    try {
      const seen: string[] = [];
      r.server.use(async (ctx, next) => {
        seen.push(`1:${ctx.name}`);
        const out = await next();
        seen.push(`1 done:${ctx.name}`);
        return out;
      });
      r.server.use((ctx, next) => {
        seen.push(`2:${ctx.name}`);
        if (ctx.name === 'blocked') throw Object.assign(new Error('no'), { code: 'APP_NO' });
        return next();
      });
      r.server.console('hello', () => 'hi', { public: true });
      r.server.console('secret', () => 'for members');
      r.server.console('admin', () => 'for admins', { roles: ['admin'] });
      r.server.console('blocked', () => 'never', { public: true });
      const a = await r.client();
      assert.equal(await a.client.callConsole('hello', ''), 'hi');
      await assert.rejects(a.client.callConsole('secret', ''), (e) => code(e) === 'ZS_UNAUTHENTICATED');
      await assert.rejects(a.client.callConsole('blocked', ''), (e) => code(e) === 'APP_NO');
      await r.sessions.createUser('frank', 'pw');
      await r.sessions.createUser('gina', 'pw', ['admin']);
      await a.login('frank', 'pw');
      assert.equal(await a.client.callConsole('secret', ''), 'for members');
      await assert.rejects(a.client.callConsole('admin', ''), (e) => code(e) === 'ZS_FORBIDDEN');
      await r.sessions.setRoles('frank', ['admin']);
      assert.equal(await a.client.callConsole('admin', ''), 'for admins');
      const b = await r.client();
      await b.login('gina', 'pw');
      assert.equal(await b.client.callConsole('admin', ''), 'for admins');
      await a.logout();
      await assert.rejects(a.client.callConsole('secret', ''), (e) => code(e) === 'ZS_UNAUTHENTICATED');
      // The guard (added first) refuses before the application's middleware sees the call.
      assert.ok(!seen.includes('1:secret') || seen.indexOf('1 done:secret') > seen.indexOf('1:secret'));
      assert.ok(seen.includes('1:hello') && seen.includes('2:hello') && seen.includes('1 done:hello'));
      assert.ok(seen.indexOf('2:hello') < seen.indexOf('1 done:hello'));
    } finally {
      await r.close();
    }
  });

  it('refuses direct messages to guarded commands before login', async () => {
    const r = await rig();
    try {
      let got = 0;
      r.server.directConsole('note', () => void got++);
      const a = await r.client();
      a.client.sendConsole('note', 'x');
      await r.sessions.createUser('hal', 'pw');
      await a.login('hal', 'pw');
      a.client.sendConsole('note', 'y');
      await until(() => got === 1);
      await new Promise((res) => setTimeout(res, 20));
      assert.equal(got, 1);
    } finally {
      await r.close();
    }
  });
});

describe('one login per user', () => {
  it('a second login takes over: the first connection is told why and closed', async () => {
    const r = await rig();
    try {
      await r.sessions.createUser('ivy', 'pw');
      const a = await r.client();
      const b = await r.client();
      await a.login('ivy', 'pw');
      const kicked = once(a, 'kicked');
      const closed = once(a.client, 'disconnect');
      await b.login('ivy', 'pw');
      assert.match(String((await kicked)[0]), /another connection/);
      await closed;
      assert.equal(r.sessions.peersOf('ivy').length, 1);
      assert.equal(r.sessions.count, 1);
    } finally {
      await r.close();
    }
  });

  it('multipleLogins: true keeps both, and a message reaches both', async () => {
    const r = await rig({ multipleLogins: true });
    try {
      await r.sessions.createUser('jay', 'pw');
      const a = await r.client();
      const b = await r.client();
      await a.login('jay', 'pw');
      await b.login('jay', 'pw');
      assert.equal(r.sessions.peersOf('jay').length, 2);
      const both = Promise.all([once(a, 'message'), once(b, 'message')]);
      assert.equal(await r.sessions.sendTo('jay', 'hi', new DataFrame().writeInt32(7)), 'live');
      for (const [m] of await both) assert.equal((m as SessionMessage).body.readInt32(), 7);
    } finally {
      await r.close();
    }
  });
});

describe('stored messages', () => {
  it('are stored while the user is away and delivered at login in order, once, then deleted', async () => {
    const r = await rig({ offlineWindow: 7 });
    try {
      await r.sessions.createUser('kim', 'pw');
      assert.equal(await r.sessions.sendTo('nobody', 'x', new DataFrame()), 'unknown-user');
      for (let i = 0; i < 50; i++) assert.equal(await r.sessions.sendTo('kim', 'n', new DataFrame().writeInt32(i)), 'stored');
      assert.equal(await r.store.pendingCount('kim'), 50);
      const a = await r.client();
      const got: SessionMessage[] = [];
      a.on('message', (m) => got.push(m));
      await a.login('kim', 'pw');
      // A live message sent while the stored ones drain is stored behind them: order holds.
      assert.equal(await r.sessions.sendTo('kim', 'n', new DataFrame().writeInt32(50)), 'stored');
      await until(() => got.length === 51);
      assert.deepEqual(got.map((m) => m.body.readInt32()), [...Array(51).keys()]);
      assert.ok(got.every((m) => m.stored && m.name === 'n' && m.sentAt > 0));
      await until(() => r.sessions.peersOf('kim').length === 1);
      await new Promise((res) => setTimeout(res, 20));
      assert.equal(await r.store.pendingCount('kim'), 0);
      assert.equal(await r.sessions.sendTo('kim', 'live', new DataFrame().writeString('now')), 'live');
      await until(() => got.length === 52);
      assert.equal(got[51]!.stored, false);
      assert.equal(got[51]!.body.readString(), 'now');
    } finally {
      await r.close();
    }
  });

  it('at maxOfflinePerUser, sendTo rejects with LimitError and stores nothing', async () => {
    const r = await rig({ maxOfflinePerUser: 5 });
    try {
      await r.sessions.createUser('lee', 'pw');
      for (let i = 0; i < 5; i++) await r.sessions.sendTo('lee', 'n', new DataFrame().writeInt32(i));
      await assert.rejects(r.sessions.sendTo('lee', 'n', new DataFrame()), (e) => e instanceof LimitError && /maxOfflinePerUser/.test(e.message));
      assert.equal(await r.store.pendingCount('lee'), 5);
    } finally {
      await r.close();
    }
  });
});

describe('time', () => {
  it('serverTime() is within 1 ms of the server clock on loopback (server clock 12.345 s ahead)', async () => {
    const skew = 12_345;
    const r = await rig({ clock: () => performance.timeOrigin + performance.now() + skew });
    try {
      const a = await r.client();
      const estimate = await a.serverTime(16);
      const truth = performance.timeOrigin + performance.now() + skew;
      assert.ok(Math.abs(a.clock!.offset - skew) < 1, `offset ${a.clock!.offset}`);
      assert.ok(Math.abs(truth - estimate) < 1 + a.clock!.rtt, `estimate off by ${truth - estimate}`);
      await assert.rejects(a.serverTime(0), RangeError);
    } finally {
      await r.close();
    }
  });

  it('Sessions.ping(peer) measures a round trip to the client', async () => {
    const r = await rig();
    try {
      await r.client();
      const peer = r.server.peers().next().value!;
      const rtt = await r.sessions.ping(peer);
      assert.ok(rtt > 0 && rtt < 1000, `rtt ${rtt}`);
    } finally {
      await r.close();
    }
  });
});
