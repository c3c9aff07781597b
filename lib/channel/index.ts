/**
 * The channel layer: the secure channel (handshake, AEAD records, rekeying)
 * as a Transport decorator. See docs/security.md.
 */
export { AeadContext, SUITE_IDS, TAG_BYTES, REKEY_KIND, type CipherSuite, type AeadKeying } from './aead.js';
export { ServerIdentity, fingerprint, PROTOCOL_VERSION, SecureKind, AlertCode, type IdentityKeyInput } from './handshake.js';
export { SecureChannel } from './secure.js';
export { MAX_RECORDS_PER_KEY, type SecureChannelOptions, type SecureChannelStats } from './options.js';
