/**
 * A stress-runner server process in rpc mode: a framework Server running the
 * stress app (app.ts) on native TCP, sharing its port with the other server
 * processes of the run through reusePort, optionally under the secure
 * channel. It answers the runner's memory queries with its own RSS and online
 * count, after a full garbage collection when the runner started it with
 * --expose-gc, so that the samples "listening" and "all connected" compare
 * like with like. Started by runner.ts with fork().
 */
import type { EndpointOptions } from '../framework/server.js';
import type { FromChild, ServerSetup, ToChild } from './protocol.js';

const say = (m: FromChild) => process.send!(m);

async function main(setup: ServerSetup): Promise<void> {
  let transport;
  try {
    const { NativeTcpTransport } = await import('../transport/native-tcp.js');
    transport = new NativeTcpTransport();
  } catch (err) {
    say({ type: 'unavailable', reason: `rpc mode needs the native transport, which is not built here (${(err as Error).message.split('\n')[0]})` });
    return;
  }
  const { Server } = await import('../framework/server.js');
  const { default: setupApp } = await import('./app.js');
  const server = new Server({ quiet: true });
  await setupApp(server, {});
  let fingerprint: string | undefined;
  let secure;
  if (setup.secureSeed !== undefined) {
    const { ServerIdentity } = await import('../channel/handshake.js');
    const identity = ServerIdentity.from(Buffer.from(setup.secureSeed, 'hex'));
    fingerprint = identity.fingerprint;
    // The whole load comes from one machine's few addresses, on purpose: lift the handshake
    // flood caps (docs/security.md, "ClientHello floods") that would otherwise pace it.
    secure = { identity, maxHandshakes: 4096, handshakeRate: 0, handshakeRatePerIp: 0 };
  }
  // reusePort is an option of the native transport's listen, passed through the endpoint options.
  const options = { reusePort: true, ...(secure ? { secure } : {}) } as EndpointOptions;
  const ep = await server.listen(transport, { host: setup.host, port: setup.port }, options);
  process.on('message', (m: ToChild) => {
    if (m.type === 'memory') {
      (globalThis as { gc?: () => void }).gc?.();
      const u = process.memoryUsage();
      say({ type: 'memory', sample: { rss: u.rss, heapUsed: u.heapUsed, external: u.external, arrayBuffers: u.arrayBuffers, peers: server.count } });
    } else if (m.type === 'close') {
      void server.close().then(() => process.exit(0));
    }
  });
  say({ type: 'ready', port: ep.address.port, ...(fingerprint === undefined ? {} : { fingerprint }) });
}

process.once('message', (setup: ServerSetup) => void main(setup));
// The runner owns this process: when it goes away, so do we.
process.on('disconnect', () => process.exit(0));
