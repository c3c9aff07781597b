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
 *   stress.add        stream: a DataFrame of two int32 in, a DataFrame of one int32 (their sum,
 *                     wrapped to 32 bits) out; the runner's `--call stream` checks each answer
 *   stress.join       console: the calling peer joins the room named by the text (peer.join());
 *                     answers the text
 *   stress.roomcast   console: sends the direct console message 'stress.tick' to the members of
 *                     room r0 on every process (server.room('r0').sendConsole()), its text as
 *                     for stress.broadcast; answers JSON {"reached": n, "local": m}: the members
 *                     of r0 over the group (room presence after the send) and those of this process
 *
 * One call of stress.broadcast or stress.roomcast makes the server send one
 * message to many peers, so each is paced: at most one per `broadcastInterval`
 * ms (config; default 1,000) per server, the others answered `ZS_RATE_LIMITED`
 * (docs/limits.md, "Stress app"). A peer calling them in a loop cannot turn
 * each of its requests into a million sends.
 */
import { RateLimitedError } from '../errors.js';
import type { Server } from '../framework/server.js';
import { DataFrame } from '../protocol/dataframe.js';

/** Name of the direct console message stress.broadcast sends to every peer. */
export const TICK = 'stress.tick';

/** The room stress.roomcast sends to; the runner's `--rooms K` puts connection i in room `r<i mod K>`. */
export const ROOMCAST_ROOM = 'r0';

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
  // One pacing clock per fan-out command: a roomcast right after a broadcast is not refused.
  const last = new Map<string, number>();
  const paced = (command: string) => {
    const now = performance.now();
    if (now - (last.get(command) ?? -Infinity) < interval) throw new RateLimitedError(command, `one call per ${interval} ms (broadcastInterval): try again later`);
    last.set(command, now);
  };
  server.console('stress.ping', (text) => text);
  server.stream('stress.add', (frame) => new DataFrame().writeInt32((frame.readInt32() + frame.readInt32()) | 0));
  server.console('stress.join', (room, peer) => {
    peer.join(room);
    return room;
  });
  // Through the cluster: in a `zserver serve --workers N` group on NATS these span every worker;
  // in one process without a bus they are this server's own.
  server.console('stress.presence', async () => JSON.stringify({ online: (await server.cluster.presence()).total }));
  server.console('stress.broadcast', async (seq) => {
    paced('stress.broadcast');
    const local = server.cluster.broadcastConsole(TICK, JSON.stringify({ seq, t: Date.now() }));
    // `reached`: the peers of the group the tick goes to (the runner waits for that many ticks).
    return JSON.stringify({ reached: (await server.cluster.presence()).total, local });
  });
  server.console('stress.roomcast', async (seq) => {
    paced('stress.roomcast');
    const room = server.room(ROOMCAST_ROOM);
    const local = room.sendConsole(TICK, JSON.stringify({ seq, t: Date.now() }));
    return JSON.stringify({ reached: await room.presence(), local });
  });
}
