/**
 * P2PVM: many virtual connections inside one established connection. See
 * docs/p2pvm.md for the packets, the handshake, the scheduler and the limits.
 */
export { P2pvmEndpoint, type P2pvmStats } from './endpoint.js';
export { P2pvmTunnel, P2pvmHost, type P2pvmTunnelOptions, type P2pvmHostOptions, type TunnelPolicy, type TunnelClose } from './tunnel.js';
export { type P2pvmOptions, DEFAULT_MAX_FRAGMENT } from './options.js';
export { P2PVM_FRAME_KIND, P2PVM_VERSION, Packet as P2pvmPacket, parseAddress, formatAddress } from './wire.js';
export { VconnTable } from './table.js';
