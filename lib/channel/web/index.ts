/**
 * The browser side of the secure channel (docs/security.md, "Browser
 * channel"): WebSecureChannel on WebCrypto, with no Node imports, for the
 * browser bundle.
 */
export { WebSecureChannel } from './channel.js';
export type { WebChannelTransport, WebSecureChannelOptions } from './types.js';
export { checkSecureCurves, SECURE_CURVES_BROWSERS } from './subtle.js';
export type { SecureChannelStats } from '../channel-options.js';
