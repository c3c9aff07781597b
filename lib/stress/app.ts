/**
 * The stress app: the commands `zserver stress --mode rpc` calls, written to
 * the app module contract of `zserver serve ./app.js` (a default export
 * `setup(server, config)`), so the same module runs in the runner's own
 * server processes and under a `zserver serve … --workers N` group.
 *
 *   stress.ping       console: answers its text unchanged
 *   stress.presence   console: answers JSON {"online": n}, the peers the cluster counts now
 *                     (server.cluster.presence(): every worker of a group on NATS)
 *   stress.broadcast  console: sends the direct console message 'stress.tick' to every peer of
 *                     the cluster, its text JSON {"seq": <the caller's text>, "t": <ms since the
 *                     epoch>}; answers JSON {"reached": n, "local": m}: the peers of the group it
 *                     goes to (presence after the send) and those of this process
 *
 * One call makes the server send one message to every peer, so broadcasts are
 * paced: at most one per `broadcastInterval` ms (config; default 1,000) per
 * server, the others answered `ZS_RATE_LIMITED` (docs/limits.md, "Stress
 * app"). A peer calling it in a loop cannot turn each of its requests into a
 * million sends.
 */
import { RateLimitedError } from '../errors.js';
import type { Server } from '../framework/server.js';

/** Name of the direct console message stress.broadcast sends to every peer. */
export const TICK = 'stress.tick';

/** What the stress app reads from its config (all optional). */
export interface StressAppConfig {
  /** Least time between two broadcasts of one server, in ms (default 1,000; 0: no pacing). */
  broadcastInterval?: number;
}

function broadcastInterval(config: unknown): number {
  const v = (config as StressAppConfig | null | undefined)?.broadcastInterval;
  if (v === undefined) return 1000;
  if (typeof v !== 'number' || !(v >= 0)) throw new TypeError(`stress app: config.broadcastInterval must be a number of ms ≥ 0, got ${String(v)}`);
  return v;
}

/** Registers the stress commands on `server`; `config` is a StressAppConfig (or nothing). */
export default async function setup(server: Server, config: unknown): Promise<void> {
  const interval = broadcastInterval(config);
  let lastBroadcast = -Infinity;
  const paced = () => {
    const now = performance.now();
    if (now - lastBroadcast < interval) throw new RateLimitedError('stress.broadcast', `one broadcast per ${interval} ms (broadcastInterval): try again later`);
    lastBroadcast = now;
  };
  server.console('stress.ping', (text) => text);
  // Through the cluster: in a `zserver serve --workers N` group on NATS these span every worker;
  // in one process without a bus they are this server's own.
  server.console('stress.presence', async () => JSON.stringify({ online: (await server.cluster.presence()).total }));
  server.console('stress.broadcast', async (seq) => {
    paced();
    const local = server.cluster.broadcastConsole(TICK, JSON.stringify({ seq, t: Date.now() }));
    // `reached`: the peers of the group the tick goes to (the runner waits for that many ticks).
    return JSON.stringify({ reached: (await server.cluster.presence()).total, local });
  });
}
