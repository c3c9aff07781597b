// Admission (lib/transport/admission.ts): the connection cap, the per-address cap and rate,
// and the accept hook, decided before a connection opens.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { Admission } from '../../lib/transport/admission.js';
import type { AcceptInfo } from '../../lib/transport/types.js';

const from = (remoteAddress: string): AcceptInfo => ({ remoteAddress, remotePort: 1, localAddress: '127.0.0.1', localPort: 2 });

test('maxConnections refuses past the cap until one is released', () => {
  const a = new Admission({ maxConnections: 2 });
  assert.equal(a.admit(from('10.0.0.1')), true);
  assert.equal(a.admit(from('10.0.0.2')), true);
  assert.equal(a.admit(from('10.0.0.3')), 'max-connections');
  a.release('10.0.0.1');
  assert.equal(a.admit(from('10.0.0.3')), true);
  assert.equal(a.open, 2);
  assert.equal(a.refused['max-connections'], 1);
});

test('maxConnectionsPerIp counts each address, IPv4-mapped IPv6 as IPv4', () => {
  const a = new Admission({ maxConnectionsPerIp: 2 });
  assert.equal(a.admit(from('10.0.0.1')), true);
  assert.equal(a.admit(from('::ffff:10.0.0.1')), true);
  assert.equal(a.admit(from('10.0.0.1')), 'per-ip');
  assert.equal(a.admit(from('10.0.0.2')), true);
  a.release('::ffff:10.0.0.1');
  assert.equal(a.admit(from('10.0.0.1')), true);
});

test('connectionRatePerIp is a token bucket refilled over time', () => {
  const a = new Admission({ connectionRatePerIp: 2 });
  const t = 1_000_000;
  assert.equal(a.admit(from('10.0.0.1'), t), true);
  assert.equal(a.admit(from('10.0.0.1'), t), true);
  assert.equal(a.admit(from('10.0.0.1'), t + 10), 'rate');
  assert.equal(a.admit(from('10.0.0.9'), t + 10), true, 'another address has its own bucket');
  assert.equal(a.admit(from('10.0.0.1'), t + 510), true, 'half a second later one token is back');
  assert.equal(a.refused.rate, 1);
});

test('the accept hook decides, sync or async, and sees the info', async () => {
  const seen: AcceptInfo[] = [];
  const a = new Admission({ accept: (info) => (seen.push(info), info.remoteAddress !== '10.6.6.6') });
  assert.equal(a.admit(from('10.0.0.1')), true);
  assert.equal(a.admit(from('10.6.6.6')), 'hook');
  assert.equal(seen.length, 2);
  assert.equal(a.open, 1, 'a refused connection is not counted');

  const b = new Admission({ accept: async (info) => info.headers?.origin === 'https://ok.example' });
  const yes = b.admit({ ...from('10.0.0.1'), headers: { origin: 'https://ok.example' } });
  const no = b.admit({ ...from('10.0.0.1'), headers: { origin: 'https://evil.example' } });
  assert.ok(yes instanceof Promise && no instanceof Promise);
  assert.equal(b.open, 2, 'counted while the hook decides');
  assert.equal(await yes, true);
  assert.equal(await no, 'hook');
  assert.equal(b.open, 1);
});

test('a hook that throws, rejects or never answers refuses', async () => {
  const a = new Admission({
    acceptTimeout: 30,
    accept: (info) => {
      if (info.remoteAddress === '1.1.1.1') throw new Error('boom');
      if (info.remoteAddress === '2.2.2.2') return Promise.reject(new Error('boom'));
      return new Promise<boolean>(() => {});
    },
  });
  assert.equal(a.admit(from('1.1.1.1')), 'hook-error');
  assert.equal(await a.admit(from('2.2.2.2')), 'hook-error');
  assert.equal(await a.admit(from('3.3.3.3')), 'hook-timeout');
  assert.equal(a.open, 0);
});

test('bad options throw naming the field', () => {
  assert.throws(() => new Admission({ maxConnections: -1 }), /maxConnections/);
  assert.throws(() => new Admission({ accept: 'yes' as never }), /accept must be a function/);
});
