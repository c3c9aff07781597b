/**
 * The stress app: the commands `zserver stress --mode rpc` calls, written to
 * the app module contract of `zserver serve ./app.js` (a default export
 * `setup(server, config)`), so the same module runs in the runner's own
 * server processes and under a `zserver serve … --workers N` group.
 *
 *   stress.ping       console: answers its text unchanged
 *   stress.presence   console: answers JSON {"online": n}, the peers the server counts now
 *   stress.broadcast  console: sends the direct console message 'stress.tick' to every peer,
 *                     its text JSON {"seq": <the caller's text>, "t": <ms since the epoch>};
 *                     answers JSON {"reached": n}, how many peers it was sent to
 *
 * Presence and broadcast each take one line here, so that they can span a
 * group by switching to the cluster's presence and broadcast.
 */
import type { Server } from '../framework/server.js';

/** Name of the direct console message stress.broadcast sends to every peer. */
export const TICK = 'stress.tick';

/** Registers the stress commands on `server`; `config` is not used. */
export default async function setup(server: Server, config: unknown): Promise<void> {
  void config; // the stress commands have nothing to configure
  server.console('stress.ping', (text) => text);
  server.console('stress.presence', () => JSON.stringify({ online: server.count }));
  server.console('stress.broadcast', (seq) => JSON.stringify({ reached: server.broadcastConsole(TICK, JSON.stringify({ seq, t: Date.now() })) }));
}
