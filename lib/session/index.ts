/** lib/session: users, login, guarded commands, stored messages, server time (docs/session.md). */
export { Sessions, type SessionsOptions, type SessionInfo, type LoginLimits, type Delivery, type ResumeOptions, type SessionHandler } from './sessions.js';
export { SessionClient, type SessionClientEvents, type SessionClientOptions, type ClientSessionHandler, type SessionMessage, type ClockEstimate, type LoginResult } from './client.js';
export type { SessionStore, UserRecord, StoredMessage } from './store.js';
export { SqliteSessionStore, MIGRATIONS as SESSION_MIGRATIONS, type SqliteSessionStoreOptions } from './sqlite.js';
export { hashPassword, verifyPassword, DEFAULT_SCRYPT_COST, type ScryptCost } from './password.js';
export { AttemptLimiter } from './throttle.js';
export { endpointCommands } from './endpoints.js';
