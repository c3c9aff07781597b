/**
 * XNAT streams: a bulk transfer both ways, hash-checked; half-close carried through the tunnel;
 * a public client that never reads (every hop's queue stops growing); two agents balanced by
 * open connections; an agent killed mid-transfer (its public connections reset at once, another
 * mapping unaffected, a new agent serves again) and an agent whose link drops reconnecting.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { agentKey, closeHttp, makeAgent, startServer, until } from './helpers.js';

/** A TCP service: `onConnection` per socket; half-open allowed. */
interface TcpService {
  server: net.Server;
  port: number;
  sockets: Set<net.Socket>;
  /** Destroys the open sockets (half-open ones would keep close() waiting) and closes. */
  close(): Promise<void>;
}

async function tcpService(onConnection: (s: net.Socket) => void): Promise<TcpService> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConnection(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const close = (): Promise<void> => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(() => r()));
  };
  return { server, port: (server.address() as net.AddressInfo).port, sockets, close };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

describe('XNAT streams', () => {
  it('moves 24 MiB up and back intact, and carries half-close both ways', async () => {
    const key = agentKey();
    const rig = await startServer([{ name: 'a', key: key.fingerprint }]);
    // Echo service; after the client's FIN it appends "bye" and ends its side.
    const svc = await tcpService((s) => {
      s.on('data', (c: Buffer) => {
        if (!s.write(c)) {
          s.pause();
          s.once('drain', () => s.resume());
        }
      });
      s.on('end', () => s.end('bye'));
    });
    const agent = makeAgent(rig, { key: key.seed, mappings: [{ publicPort: rig.ports[0]!, host: '127.0.0.1', port: svc.port }] });
    try {
      await agent.start();
      const data = randomBytes(24 * 1024 * 1024);
      const c = await connect(rig.ports[0]!);
      const got: Buffer[] = [];
      c.on('data', (b: Buffer) => got.push(b));
      const ended = once(c, 'end');
      c.end(data); // FIN after the data: the service sees 'end' only after every byte
      await ended;
      const all = Buffer.concat(got);
      assert.equal(all.length, data.length + 3);
      assert.equal(sha(all.subarray(0, data.length)), sha(data), 'the echoed bytes are the bytes sent');
      assert.equal(all.subarray(data.length).toString(), 'bye', 'the answer after the FIN came, then the FIN');
      await until(() => rig.server.stats().ports[0]!.connections === 0, 5000, 'the pair closed');
      const s = rig.server.stats().ports[0]!;
      assert.equal(s.bytesIn, data.length);
      assert.equal(s.bytesOut, data.length + 3);
      c.destroy();
    } finally {
      await agent.stop();
      await rig.server.close();
      await svc.close();
    }
  });

  it('a public client that never reads: the service is held back and no queue on the way keeps growing', async () => {
    const key = agentKey();
    const rig = await startServer([{ name: 'a', key: key.fingerprint }]);
    let written = 0;
    const limit = 256 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 7);
    const svc = await tcpService((s) => {
      const pump = () => {
        while (written < limit && !s.destroyed) {
          written += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
      };
      pump();
    });
    const agent = makeAgent(rig, { key: key.seed, mappings: [{ publicPort: rig.ports[0]!, host: '127.0.0.1', port: svc.port }] });
    try {
      await agent.start();
      const c = await connect(rig.ports[0]!);
      c.pause(); // never reads
      let last = -1;
      // Wait until the service is stuck: nothing more was written for 300 ms.
      for (let i = 0; i < 50 && written !== last; i++) {
        last = written;
        await new Promise((r) => setTimeout(r, 300));
      }
      assert.equal(written, last, 'the service stopped being able to write');
      assert.ok(written < 96 * 1024 * 1024, `the service wrote ${written} bytes before it was held back (kernel buffers and one window per hop)`);
      const hostQueued = rig.server.tunnels.stats().queuedBytes;
      const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().external;
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(written, last, 'still held back');
      assert.ok(hostQueued <= 2 * 1024 * 1024, `the server's tunnel queue holds ${hostQueued} bytes (at most its highWaterMark and a window)`);
      assert.ok(rig.server.tunnels.stats().queuedBytes <= hostQueued + 64 * 1024, 'the server tunnel queue does not grow');
      const heapAfter = process.memoryUsage().heapUsed + process.memoryUsage().external;
      assert.ok(heapAfter - heapBefore < 32 * 1024 * 1024, 'memory did not grow while the client kept not reading');
      // The client goes away: the service's connection is reset, nothing is left behind.
      c.destroy();
      await until(() => svc.sockets.size === 0 && rig.server.stats().ports[0]!.connections === 0, 5000, 'the service connection closed');
    } finally {
      await agent.stop();
      await rig.server.close();
      await svc.close();
    }
  });

  it('two agents on one port share the connections by open count', async () => {
    const k1 = agentKey();
    const k2 = agentKey();
    const rig = await startServer([
      { name: 'one', key: k1.fingerprint },
      { name: 'two', key: k2.fingerprint },
    ]);
    const svc1 = await tcpService((s) => s.write('one'));
    const svc2 = await tcpService((s) => s.write('two'));
    const a1 = makeAgent(rig, { key: k1.seed, mappings: [{ publicPort: rig.ports[0]!, host: '127.0.0.1', port: svc1.port }] });
    const a2 = makeAgent(rig, { key: k2.seed, mappings: [{ publicPort: rig.ports[0]!, host: '127.0.0.1', port: svc2.port }] });
    const clients: net.Socket[] = [];
    try {
      await a1.start();
      await a2.start();
      assert.equal(rig.server.stats().ports[0]!.agents, 2);
      const tags: string[] = [];
      for (let i = 0; i < 20; i++) {
        const c = await connect(rig.ports[0]!);
        clients.push(c);
        const [b] = (await once(c, 'data')) as [Buffer];
        tags.push(b.toString());
      }
      assert.equal(tags.filter((t) => t === 'one').length, 10, tags.join(','));
      assert.equal(tags.filter((t) => t === 'two').length, 10);
      // Closing all of agent one's connections makes it the emptier one: the next goes there.
      // A reset, not a FIN: a FIN would only half-close (the service may still answer).
      for (let i = 0; i < 20; i++) if (tags[i] === 'one') clients[i]!.resetAndDestroy();
      await until(() => svc1.sockets.size === 0, 5000, 'agent one idle');
      const c = await connect(rig.ports[0]!);
      clients.push(c);
      assert.equal(((await once(c, 'data')) as [Buffer])[0].toString(), 'one');
    } finally {
      for (const c of clients) c.destroy();
      await a1.stop();
      await a2.stop();
      await rig.server.close();
      await svc1.close();
      await svc2.close();
    }
  });

  it('an agent killed mid-transfer: its clients are reset at once, another mapping goes on, a new agent serves again', async () => {
    const kk = agentKey();
    const kb = agentKey();
    const rig = await startServer(
      [
        { name: 'killed', key: kk.fingerprint },
        { name: 'other', key: kb.fingerprint },
      ],
      2,
    );
    // A service that streams forever (paced), and an echo service for the other mapping.
    const stream = await tcpService((s) => {
      const t = setInterval(() => s.write(Buffer.alloc(16 * 1024, 1)), 5);
      s.on('close', () => clearInterval(t));
    });
    const echo = await tcpService((s) => s.pipe(s));
    const other = makeAgent(rig, { key: kb.seed, mappings: [{ publicPort: rig.ports[1]!, host: '127.0.0.1', port: echo.port }] });
    const child = (): Promise<ReturnType<typeof spawn>> => {
      const p = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./agent-child.ts', import.meta.url))], {
        env: {
          ...process.env,
          XNAT_AGENT: JSON.stringify({
            server: { host: '127.0.0.1', port: rig.agentPort },
            pin: rig.server.fingerprint,
            seed: kk.seed.toString('hex'),
            mappings: [{ publicPort: rig.ports[0]!, host: '127.0.0.1', port: stream.port }],
          }),
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      return new Promise((resolve, reject) => {
        p.stdout!.on('data', (b: Buffer) => b.toString().includes('serving') && resolve(p));
        p.once('exit', (code) => reject(new Error(`agent child exited with ${code}`)));
      });
    };
    const procs: ReturnType<typeof spawn>[] = [];
    try {
      await other.start();
      procs.push(await child());
      const downloading = await connect(rig.ports[0]!);
      let got = 0;
      downloading.on('data', (b: Buffer) => (got += b.length));
      await until(() => got > 256 * 1024, 10_000, 'the transfer is under way');
      const chat = await connect(rig.ports[1]!);
      chat.write('before');
      assert.equal(((await once(chat, 'data')) as [Buffer])[0].toString(), 'before');

      const failed = new Promise<[string, number]>((resolve) => {
        const t0 = Date.now();
        downloading.once('error', (e: NodeJS.ErrnoException) => resolve([e.code ?? e.message, Date.now() - t0]));
        downloading.once('end', () => resolve(['clean end', Date.now() - t0]));
      });
      procs[0]!.kill('SIGKILL');
      const [how, ms] = await failed;
      assert.equal(how, 'ECONNRESET', 'the public client sees an error, not a clean end');
      assert.ok(ms < 3000, `within ${ms} ms of the kill`);
      await until(() => rig.server.stats().ports[0]!.agents === 0, 3000, 'the killed agent is out of service');

      chat.write('after');
      assert.equal(((await once(chat, 'data')) as [Buffer])[0].toString(), 'after', 'the other mapping is unaffected');

      procs.push(await child());
      const again = await connect(rig.ports[0]!);
      await once(again, 'data');
      again.destroy();
      chat.destroy();
    } finally {
      for (const p of procs) if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGKILL');
        await once(p, 'exit');
      }
      await other.stop();
      await rig.server.close();
      await stream.close();
      await echo.close();
    }
  });

  it('an agent whose link to the server drops resets its clients, reconnects with backoff and serves again', async () => {
    const key = agentKey();
    const rig = await startServer([{ name: 'a', key: key.fingerprint }]);
    const svc = await tcpService((s) => s.pipe(s));
    // A cuttable TCP proxy between the agent and the server.
    const links = new Set<net.Socket>();
    const proxy = net.createServer((inb) => {
      const out = net.connect(rig.agentPort, '127.0.0.1');
      links.add(inb);
      links.add(out);
      inb.on('error', () => out.destroy());
      out.on('error', () => inb.destroy());
      inb.on('close', () => (out.destroy(), links.delete(inb)));
      out.on('close', () => (inb.destroy(), links.delete(out)));
      inb.pipe(out);
      out.pipe(inb);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const agent = makeAgent({ ...rig, agentPort: (proxy.address() as net.AddressInfo).port }, { key: key.seed, mappings: [{ publicPort: rig.ports[0]!, host: '127.0.0.1', port: svc.port }] });
    const downs: string[] = [];
    agent.on('down', (e) => downs.push(e.message));
    try {
      await agent.start();
      const c = await connect(rig.ports[0]!);
      c.write('ping');
      await once(c, 'data');
      const errored = new Promise<string>((resolve) => {
        c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? ''));
        c.once('end', () => resolve('end'));
      });
      const served = once(agent, 'serving');
      for (const s of links) s.destroy();
      assert.equal(await errored, 'ECONNRESET');
      await served;
      assert.ok(downs.length >= 1);
      assert.equal(agent.stats().sessions, 2);
      const c2 = await connect(rig.ports[0]!);
      c2.write('again');
      assert.equal(((await once(c2, 'data')) as [Buffer])[0].toString(), 'again');
      c2.destroy();
    } finally {
      await agent.stop();
      await rig.server.close();
      await svc.close();
      for (const s of links) s.destroy();
      await closeHttp(proxy);
    }
  });
});
