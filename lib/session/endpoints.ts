/**
 * Per-endpoint command sets: ZServer4D programs listen on several ports, each with its own
 * clients and rules (a public port for players, another for administrators). A Server has one
 * command table; this middleware narrows it per endpoint, so one port answers only the
 * commands listed for it.
 */
import { ForbiddenError } from '../errors.js';
import type { Middleware } from '../framework/registry.js';
import type { ServerEndpoint } from '../framework/server.js';

/**
 * A middleware (`server.use(endpointCommands(ep, [...]))`) that lets the peers of `endpoint`
 * run only the commands named in `commands`; any other command from them is refused with
 * `ZS_FORBIDDEN` (ForbiddenError) before its handler, and a direct message to it is dropped.
 * Peers of other endpoints are not affected. The session protocol's own commands (`zs.*`:
 * login, resume, time...) always pass, so Sessions works on every endpoint; their own guards
 * still apply. Use one per endpoint to restrict. The endpoint is known by its transport stack,
 * so give each restricted endpoint a transport of its own (a createTransport() call each).
 */
export function endpointCommands(endpoint: ServerEndpoint, commands: Iterable<string>): Middleware {
  const allowed = new Set(commands);
  return (ctx, next) => {
    // A peer's transport is the stack of the endpoint it came through.
    if (ctx.peer.transport !== endpoint.stack || allowed.has(ctx.name) || ctx.name.startsWith('zs.')) return next();
    throw new ForbiddenError(`command '${ctx.name}' is not served on ${endpoint.address.host}:${endpoint.address.port}: use the endpoint that serves it`);
  };
}
