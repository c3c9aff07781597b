/**
 * The session store: what lib/session keeps across restarts (users with their password
 * records and roles, and the messages waiting for a user who is not logged in). `SessionStore`
 * is the seam: the embedded default is SQLite (sqlite.ts); a cluster can put another backend
 * (NATS KV, a SQL server) behind the same methods. Every method returns a promise so that
 * such a backend can do I/O; the SQLite one answers at once.
 */

/** A user as the store keeps it. */
export interface UserRecord {
  readonly name: string;
  /** The encoded password hash (password.ts): never the password itself. */
  readonly password: string;
  readonly roles: readonly string[];
  /** Creation time, ms since the epoch. */
  readonly created: number;
}

/** A message stored for a user who was not logged in; `id` grows with each message of the store. */
export interface StoredMessage {
  readonly id: number;
  /** The message's name (what the client's 'message' event reports). */
  readonly name: string;
  /** The encoded DataFrame. */
  readonly body: Uint8Array;
  /** When it was sent, ms since the epoch. */
  readonly sentAt: number;
}

/** Persistent state of lib/session; see the file comment. */
export interface SessionStore {
  /** Adds `user`; false when the name is taken (nothing changes then). */
  createUser(user: UserRecord): Promise<boolean>;
  getUser(name: string): Promise<UserRecord | undefined>;
  /** Replaces the password record; false when there is no such user. */
  setPassword(name: string, password: string): Promise<boolean>;
  /** Replaces the roles; false when there is no such user. */
  setRoles(name: string, roles: readonly string[]): Promise<boolean>;
  /** Removes the user and every message waiting for it; false when there was none. */
  deleteUser(name: string): Promise<boolean>;
  /**
   * Stores a message for `user` and returns its id, or null (nothing stored) when `max`
   * messages already wait for that user. The message is durable when the promise resolves.
   */
  enqueue(user: string, name: string, body: Uint8Array, sentAt: number, max: number): Promise<number | null>;
  /** Up to `limit` messages waiting for `user` with ids above `afterId`, oldest first. */
  pending(user: string, afterId: number, limit: number): Promise<StoredMessage[]>;
  /** Deletes every message of `user` with an id up to `upToId` (acknowledged); returns how many. */
  ack(user: string, upToId: number): Promise<number>;
  /** How many messages wait for `user`. */
  pendingCount(user: string): Promise<number>;
  /** Releases the backend; every later call throws. */
  close(): void;
}
