/**
 * A listed agent that breaks the relay's rules on a virtual connection (a frame kind other than
 * data and END, bytes after END): the server aborts that public connection only (its client sees
 * a reset), and the agent's tunnel and its other connections go on. Afterwards no TCP handle is
 * left open: the pair aborted right after its END (a FIN being sent) once leaked its public socket
 * on Node net, and the process never exited.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { SecureChannel } from '../../lib/channel/index.js';
import { Client } from '../../lib/framework/client.js';
import { P2pvmTunnel } from '../../lib/p2pvm/index.js';
import { loadAgentKey, signChallenge } from '../../lib/xnat/auth.js';
import { agentKey, identity, makeTransport, startServer, until } from './helpers.js';

const tcpHandles = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;

describe('XNAT against a misbehaving agent', () => {
  it('aborts only the public connection whose virtual connection broke the rules', async () => {
    const before = tcpHandles();
    const key = agentKey();
    const rig = await startServer([{ name: 'evil', key: key.fingerprint }]);
    const secure = new SecureChannel(makeTransport(), { pin: identity.fingerprint });
    const client = new Client({ transport: secure, host: '127.0.0.1', port: rig.agentPort, reconnect: false, quiet: true });
    let tunnel: P2pvmTunnel | undefined;
    try {
      // The agent's control steps, by hand.
      const peer = await client.connect();
      const { challenge } = JSON.parse(await client.callConsole('xnat.hello', '')) as { challenge: string };
      const k = loadAgentKey(key.seed);
      const signature = signChallenge(k, Buffer.from(challenge, 'hex'), secure.remoteFingerprint(peer.transportPeer)!);
      const address = `fd00::${randomBytes(2).toString('hex')}`;
      await client.callConsole('xnat.register', JSON.stringify({ key: k.publicKey.toString('base64'), signature: signature.toString('base64'), address, ports: [rig.ports[0]] }));
      tunnel = await P2pvmTunnel.open(secure, peer.transportPeer);
      const t = tunnel;
      await t.listen({ host: address, port: rig.ports[0]! });
      await t.ping();
      await client.callConsole('xnat.serve', '');
      // Connection 1: a frame of an unknown kind. 2: bytes after END. 3: plays by the rules.
      let n = 0;
      t.on('open', (v) => {
        n++;
        if (n === 1) t.send(v, 20, 0, Buffer.from('evil'));
        else if (n === 2) {
          t.send(v, 9, 0, Buffer.alloc(0));
          t.send(v, 8, 0, Buffer.from('after the end'));
        } else t.send(v, 8, 0, Buffer.from('fine'));
      });
      const outcome = (c: net.Socket) =>
        new Promise<string>((resolve) => {
          let got = '';
          c.on('data', (b: Buffer) => (got += b.toString()));
          c.once('error', (e: NodeJS.ErrnoException) => resolve(`${got}|${e.code}`));
          c.once('end', () => resolve(`${got}|end`));
        });
      const c1 = net.connect(rig.ports[0]!, '127.0.0.1');
      assert.equal(await outcome(c1), '|ECONNRESET');
      const c2 = net.connect(rig.ports[0]!, '127.0.0.1');
      // The END was valid when it came (the client got its FIN); the bytes after it never reach
      // the client: the pair is aborted instead.
      assert.match(await outcome(c2), /^\|(end|ECONNRESET)$/);
      const c3 = net.connect(rig.ports[0]!, '127.0.0.1');
      assert.equal(((await once(c3, 'data')) as [Buffer])[0].toString(), 'fine');
      assert.equal(t.isOpen, true, 'the agent stays connected');
      assert.equal(rig.server.stats().agents, 1);
      c3.resetAndDestroy();
      c1.destroy();
      c2.destroy();
      await until(() => rig.server.stats().ports[0]!.connections === 0, 3000, 'all pairs closed');
    } finally {
      await tunnel?.shutdown();
      await client.close();
      await secure.shutdown();
      await rig.server.close();
    }
    await until(() => tcpHandles() <= before, 5000, 'every TCP handle of the test closed (none leaked)');
  });
});
