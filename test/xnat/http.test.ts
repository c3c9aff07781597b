/**
 * XNAT end to end over Node net: HTTP through the tunnel with many concurrent requests, stats
 * per public port, and the agent's key authentication (a wrong key or token is refused).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { XnatRefusedError } from '../../lib/errors.js';
import { agentKey, closeHttp, get, httpService, makeAgent, startServer, TOKEN, until } from './helpers.js';

describe('XNAT: HTTP through the tunnel', () => {
  it('serves 300 concurrent HTTP requests from a local service behind an agent, counted per port', async () => {
    const key = agentKey();
    const rig = await startServer([{ name: 'home', key: key.fingerprint }]);
    const web = await httpService('web');
    const agent = makeAgent(rig, { key: key.seed, mappings: [{ publicPort: rig.ports[0]!, host: '127.0.0.1', port: web.port }] });
    try {
      const downs: string[] = [];
      agent.on('down', (e) => downs.push(e.message));
      await agent.start();
      assert.equal(rig.server.stats().agents, 1);
      const bodies = await Promise.all(Array.from({ length: 300 }, (_, i) => get(rig.ports[0]!, `/r${i}`)));
      bodies.forEach((b, i) => assert.equal(b, `web /r${i} 0`));
      assert.deepEqual(downs, [], 'the agent stayed connected');
      await until(() => rig.server.stats().ports[0]!.connections === 0, 5000, 'every public connection closed');
      const s = rig.server.stats().ports[0]!;
      assert.equal(s.accepted, 300);
      assert.equal(s.failed, 0);
      assert.ok(s.bytesIn > 300 * 20 && s.bytesOut > 300 * 20, `bytes counted both ways (${s.bytesIn} in, ${s.bytesOut} out)`);
    } finally {
      await agent.stop();
      await rig.server.close();
      await closeHttp(web.server);
    }
  });

  it('refuses an agent whose key is not listed, one with a wrong token, and one declaring a port not offered', async () => {
    const listed = agentKey();
    const stranger = agentKey();
    const rig = await startServer([
      { name: 'listed', key: listed.fingerprint },
      { name: 'tok', token: TOKEN, ports: [1] },
    ]);
    const web = await httpService('web');
    const mappings = [{ publicPort: rig.ports[0]!, host: '127.0.0.1', port: web.port }];
    try {
      const bad = makeAgent(rig, { key: stranger.seed, mappings });
      await assert.rejects(bad.start(), (err: Error) => err instanceof XnatRefusedError && /not listed/.test(err.message));
      const badToken = makeAgent(rig, { token: 'not-the-token-at-all', mappings });
      await assert.rejects(badToken.start(), (err: Error) => err instanceof XnatRefusedError && /token is not listed/.test(err.message));
      const wrongPort = makeAgent(rig, { token: TOKEN, mappings });
      await assert.rejects(wrongPort.start(), (err: Error) => err instanceof XnatRefusedError && /may not serve public port/.test(err.message));
      assert.equal(rig.server.stats().refused, 3);
      assert.equal(rig.server.stats().agents, 0);
      // With no agent in service, a public client is reset rather than left hanging.
      await assert.rejects(get(rig.ports[0]!, '/'), /ECONNRESET|socket hang up/);
      // The listed key is served.
      const good = makeAgent(rig, { key: listed.seed, mappings });
      await good.start();
      assert.equal(await get(rig.ports[0]!, '/ok'), 'web /ok 0');
      await good.stop();
      for (const a of [bad, badToken, wrongPort]) await a.stop();
    } finally {
      await rig.server.close();
      await closeHttp(web.server);
    }
  });
});
