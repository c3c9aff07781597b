/**
 * XNAT limits (docs/limits.md, "XNAT"): the per-port connection cap, the idle timeout of public
 * connections, the time an agent connection has to authenticate, and maxAgents.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { SecureChannel } from '../../lib/channel/index.js';
import { Client } from '../../lib/framework/client.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import { agentKey, identity, makeAgent, startServer, until } from './helpers.js';

async function holdService(): Promise<{ server: net.Server; port: number; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.write('hi');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port, sockets };
}

function stop(svc: { server: net.Server; sockets: Set<net.Socket> }): Promise<void> {
  for (const s of svc.sockets) s.destroy();
  return new Promise((r) => svc.server.close(() => r()));
}

/** Resolves to how a client connection ended: 'ECONNRESET', 'end' or another error code. */
function ending(c: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    c.once('end', () => resolve('end'));
  });
}

describe('XNAT limits', () => {
  it('maxConnections per public port: the connection past it is refused; idleTimeout resets an idle pair', async () => {
    const key = agentKey();
    const rig = await startServer([{ name: 'a', key: key.fingerprint }], 1, {
      ports: [{ host: '127.0.0.1', port: 0, maxConnections: 2 }],
      idleTimeout: 400,
    });
    const svc = await holdService();
    const agent = makeAgent(rig, { key: key.seed, mappings: [{ publicPort: rig.ports[0]!, host: '127.0.0.1', port: svc.port }] });
    try {
      await agent.start();
      const held = [net.connect(rig.ports[0]!, '127.0.0.1'), net.connect(rig.ports[0]!, '127.0.0.1')];
      for (const c of held) await once(c, 'data');
      const ends = held.map(ending);
      const third = net.connect(rig.ports[0]!, '127.0.0.1');
      const how = await ending(third);
      assert.ok(how === 'ECONNRESET' || how === 'end', `the third connection was refused (${how})`);
      assert.equal(svc.sockets.size, 2, 'the service never saw it');
      // Nobody sends anything: after idleTimeout both pairs are reset, on both sides.
      const t0 = Date.now();
      assert.deepEqual(await Promise.all(ends), ['ECONNRESET', 'ECONNRESET']);
      assert.ok(Date.now() - t0 < 3000);
      await until(() => svc.sockets.size === 0 && rig.server.stats().ports[0]!.connections === 0, 3000, 'service side closed');
    } finally {
      await agent.stop();
      await rig.server.close();
      await stop(svc);
    }
  });

  it('an agent connection that does not authenticate within authTimeout is closed; past maxAgents one is refused', async () => {
    const key = agentKey();
    const rig = await startServer([{ name: 'a', key: key.fingerprint }], 1, { authTimeout: 300, maxAgents: 1 });
    const net1 = new NodeNetTransport();
    const secure = new SecureChannel(net1, { pin: identity.fingerprint });
    const idle = new Client({ transport: secure, host: '127.0.0.1', port: rig.agentPort, reconnect: false, quiet: true });
    try {
      await idle.connect();
      const gone = once(idle, 'disconnect');
      // While it holds the only agent slot, a real agent is turned away.
      const svc = await holdService();
      const agent = makeAgent(rig, { key: key.seed, mappings: [{ publicPort: rig.ports[0]!, host: '127.0.0.1', port: svc.port }] });
      const down = once(agent, 'down');
      const started = agent.start();
      await down;
      const t0 = Date.now();
      await gone;
      assert.ok(Date.now() - t0 < 2000, 'closed after authTimeout');
      // The slot is free again: the agent's next attempt gets in.
      await started;
      assert.equal(rig.server.stats().agents, 1);
      await agent.stop();
      await stop(svc);
    } finally {
      await idle.close();
      await secure.shutdown();
      await rig.server.close();
    }
  });
});

describe('XNAT control plane', () => {
  it('refuses a register message over 16 KiB and one without hello first, and closes the connection', async () => {
    const key = agentKey();
    const rig = await startServer([{ name: 'a', key: key.fingerprint }]);
    const secure = new SecureChannel(new NodeNetTransport(), { pin: identity.fingerprint });
    const c = new Client({ transport: secure, host: '127.0.0.1', port: rig.agentPort, reconnect: false, quiet: true });
    try {
      await c.connect();
      // Listen before calling: over a transport that hands up the answer and the close in one batch
      // (native TCP), 'disconnect' comes before the call's rejection is seen.
      let gone = once(c, 'disconnect');
      await assert.rejects(c.callConsole('xnat.register', '{}'), { remoteCode: 'ZS_XNAT_REFUSED', message: /without xnat.hello/ });
      await gone;
      await c.connect();
      await c.callConsole('xnat.hello', '');
      gone = once(c, 'disconnect');
      await assert.rejects(c.callConsole('xnat.register', 'x'.repeat(17 * 1024)), { remoteCode: 'ZS_XNAT_REFUSED', message: /longer than 16384/ });
      await gone;
      assert.equal(rig.server.stats().refused, 2);
    } finally {
      await c.close();
      await secure.shutdown();
      await rig.server.close();
    }
  });
});
