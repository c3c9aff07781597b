/**
 * XNAT: services behind NAT reached through an encrypted tunnel (docs/xnat.md). XnatServer on the
 * public side, XnatAgent next to the services; StreamRelay joins raw TCP streams to P2PVM virtual
 * connections on both.
 */
export { XnatServer, type XnatServerStats, type XnatPortStats, type XnatServerEvents } from './server.js';
export { XnatAgent, type XnatAgentStats, type XnatAgentEvents } from './agent.js';
export { loadAgentKey, type AgentKey } from './auth.js';
export type { XnatServerOptions, XnatAgentOptions, XnatPortOptions, XnatAgentEntry, XnatMapping, XnatBackoff } from './options.js';
