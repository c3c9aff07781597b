/**
 * The server process of bench/attacks.ts and bench/soak.ts: the Server of
 * `zserver serve` (createTestServer(): echo, add, md5, upload, ...) on one TCP
 * transport and, when asked, on a uWebSockets.js WebSocket endpoint, started
 * with fork() and driven over IPC.
 *
 * With `ws: true` it is startServe() itself (the TCP endpoint and serve's
 * WebSocket endpoint with its web page), so the WebSocket attack meets serve's
 * own Origin policy. Otherwise it is a script of its own rather than
 * `zserver serve` because the instruments need what serve has no flags for: listen options (short idle
 * and frame timeouts, so a limit is seen within an attack's 15 s; a per-IP
 * cap; SO_REUSEPORT for a group), the close reason of every peer, and the
 * process's own memory figures. The commands and their handlers are serve's.
 *
 * IPC, parent to child: the setup (first message), then { type: 'memory' }
 * or { type: 'close' }. Child to parent: 'ready', 'closes' (batched every
 * 100 ms: remote address, remote port, reason, detail of every framework peer
 * that went away), 'memory' (process.memoryUsage(), peers online, transport
 * close counters, event-loop delay). The child exits when the parent goes away.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createTestServer, startServe } from '../../lib/cli/serve.js';
import type { EndpointOptions } from '../../lib/framework/server.js';
import { createTransport, type TransportName } from '../../lib/transport/factory.js';
import type { ListenOptions, Transport } from '../../lib/transport/types.js';

/** What the parent sends first. */
export interface ServerSetup {
  transport: Exclude<TransportName, 'memory'>;
  host: string;
  port: number;
  /** Also listen for WebSocket upgrades (uWebSockets.js) on an ephemeral port. */
  ws?: boolean;
  /** SO_REUSEPORT (native transport): several processes share one port. */
  reusePort?: boolean;
  /** Listen options of the TCP endpoint (and the WebSocket one), as given to Server.listen(). */
  listen?: ListenOptions;
  /** Broadcast a console push 'tick' to every peer this often (ms; 0: never). */
  pushEveryMs?: number;
}

export type ServerMessage =
  | { type: 'ready'; port: number; wsPort: number; wsError: string }
  | { type: 'closes'; list: [string, number, string, string][] }
  | {
      type: 'memory';
      rss: number;
      heapUsed: number;
      heapTotal: number;
      external: number;
      arrayBuffers: number;
      peers: number;
      closes: Record<string, number>;
      loopMaxMs: number;
      loopP99Ms: number;
      pushes: number;
    };

const say = (m: ServerMessage) => process.send?.(m);

async function main(setup: ServerSetup): Promise<void> {
  const server = createTestServer();
  const transports: Transport[] = [];
  let tcpPort: number;
  let wsPort = 0;
  let wsError = '';
  if (setup.ws) {
    // The WebSocket endpoint exactly as `zserver serve` makes it (web page, and whatever Origin
    // policy serve sets), on ephemeral ports; listen options do not apply to this path.
    if (setup.listen !== undefined || setup.reusePort) throw new RangeError('ws: true takes no listen options (it is serve as it is)');
    const h = await startServe({ transport: setup.transport, host: setup.host, port: setup.port, wsPort: 0, once: false }, setup.transport, server);
    transports.push(h.transport);
    tcpPort = h.tcp.address.port;
    if (h.web) {
      transports.push(h.web.transport);
      wsPort = h.web.address.port;
    } else wsError = 'no WebSocket endpoint';
  } else {
    const transport = await createTransport(setup.transport);
    transports.push(transport);
    const listen = { ...(setup.listen ?? {}), ...(setup.reusePort ? { reusePort: true } : {}) } as EndpointOptions;
    tcpPort = (await server.listen(transport, { host: setup.host, port: setup.port }, listen)).address.port;
  }

  let pending: [string, number, string, string][] = [];
  server.on('disconnect', (peer, reason, detail) => {
    pending.push([peer.info.remoteAddress, peer.info.remotePort, reason, detail.slice(0, 120)]);
  });
  const flush = setInterval(() => {
    if (pending.length === 0) return;
    const list = pending;
    pending = [];
    for (let i = 0; i < list.length; i += 5000) say({ type: 'closes', list: list.slice(i, i + 5000) });
  }, 100);

  let pushes = 0;
  const pusher =
    setup.pushEveryMs && setup.pushEveryMs > 0
      ? setInterval(() => (pushes += server.broadcastConsole('tick', String(Date.now()))), setup.pushEveryMs)
      : undefined;

  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  process.on('message', (m: { type: string }) => {
    if (m.type === 'memory') {
      const u = process.memoryUsage();
      const closes: Record<string, number> = {};
      for (const t of transports) {
        for (const [k, v] of Object.entries(t.stats().closes)) closes[k] = (closes[k] ?? 0) + (v ?? 0);
      }
      say({
        type: 'memory',
        rss: u.rss,
        heapUsed: u.heapUsed,
        heapTotal: u.heapTotal,
        external: u.external,
        arrayBuffers: u.arrayBuffers,
        peers: server.count,
        closes,
        loopMaxMs: delay.max / 1e6,
        loopP99Ms: delay.percentile(99) / 1e6,
        pushes,
      });
      delay.reset();
    } else if (m.type === 'close') {
      clearInterval(flush);
      if (pusher) clearInterval(pusher);
      const quit = setTimeout(() => process.exit(0), 3000);
      quit.unref();
      void server.close().finally(() => process.exit(0));
    }
  });
  say({ type: 'ready', port: tcpPort, wsPort, wsError });
}

process.once('message', (setup: ServerSetup) => {
  main(setup).catch((err: Error) => {
    process.stderr.write(`attack server: ${err.stack ?? err.message}\n`);
    process.exit(2);
  });
});
// The parent owns this process: when it goes away, so do we.
process.on('disconnect', () => process.exit(0));
