/**
 * SqliteSessionStore: the embedded SessionStore, on better-sqlite3. One file (or ':memory:'),
 * WAL journal so readers never wait for the writer and a commit is one append, synchronous=FULL
 * so a message the store acknowledged survives a crash of the process or of the machine. The
 * schema is versioned: `schema_versions` lists the migrations applied, and opening a store
 * applies the missing ones in order, each in its own transaction.
 *
 * better-sqlite3 is loaded when the first store is made, not when the package is imported,
 * so programs without sessions never load its addon.
 */
import { createRequire } from 'node:module';
import { ConnectionClosedError } from '../errors.js';
import type BetterSqlite3 from 'better-sqlite3';
import type { SessionStore, StoredMessage, UserRecord } from './store.js';

/** One schema change: applied once, in order of `version`. */
interface Migration {
  readonly version: number;
  readonly sql: string;
}

/** The schema, as the list of its migrations; append, never edit an applied one. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE users (
        name TEXT PRIMARY KEY NOT NULL,
        password TEXT NOT NULL,
        roles TEXT NOT NULL DEFAULT '[]',
        created INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE offline (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user TEXT NOT NULL,
        name TEXT NOT NULL,
        body BLOB NOT NULL,
        sent_at INTEGER NOT NULL
      );
      CREATE INDEX offline_user ON offline (user, id);
    `,
  },
];

/** Options of SqliteSessionStore. */
export interface SqliteSessionStoreOptions {
  /** The database file; ':memory:' (the default) keeps nothing across restarts. */
  path?: string;
}

type Database = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement;

/** The embedded SessionStore; see the file comment. */
export class SqliteSessionStore implements SessionStore {
  readonly path: string;
  #db: Database | null;
  readonly #q: Record<string, Statement>;

  constructor(options: SqliteSessionStoreOptions = {}) {
    this.path = options.path ?? ':memory:';
    const Sqlite = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
    const db = new Sqlite(this.path);
    this.#db = db;
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    migrate(db);
    this.#q = {
      createUser: db.prepare('INSERT OR IGNORE INTO users (name, password, roles, created) VALUES (?, ?, ?, ?)'),
      getUser: db.prepare('SELECT name, password, roles, created FROM users WHERE name = ?'),
      setPassword: db.prepare('UPDATE users SET password = ? WHERE name = ?'),
      setRoles: db.prepare('UPDATE users SET roles = ? WHERE name = ?'),
      deleteUser: db.prepare('DELETE FROM users WHERE name = ?'),
      deleteMessages: db.prepare('DELETE FROM offline WHERE user = ?'),
      count: db.prepare('SELECT count(*) AS n FROM offline WHERE user = ?'),
      insert: db.prepare('INSERT INTO offline (user, name, body, sent_at) VALUES (?, ?, ?, ?)'),
      pending: db.prepare('SELECT id, name, body, sent_at FROM offline WHERE user = ? AND id > ? ORDER BY id LIMIT ?'),
      ack: db.prepare('DELETE FROM offline WHERE user = ? AND id <= ?'),
    };
  }

  /** The migration versions applied to this database, in order. */
  schemaVersions(): number[] {
    return (this.#open().prepare('SELECT version FROM schema_versions ORDER BY version').all() as { version: number }[]).map((r) => r.version);
  }

  /** The journal mode SQLite reports ('wal' for a file, 'memory' for ':memory:'). */
  journalMode(): string {
    return String(this.#open().pragma('journal_mode', { simple: true }));
  }

  async createUser(user: UserRecord): Promise<boolean> {
    this.#open();
    return this.#q.createUser!.run(user.name, user.password, JSON.stringify(user.roles), user.created).changes === 1;
  }

  async getUser(name: string): Promise<UserRecord | undefined> {
    this.#open();
    const row = this.#q.getUser!.get(name) as { name: string; password: string; roles: string; created: number } | undefined;
    if (row === undefined) return undefined;
    return { name: row.name, password: row.password, roles: JSON.parse(row.roles) as string[], created: row.created };
  }

  async setPassword(name: string, password: string): Promise<boolean> {
    this.#open();
    return this.#q.setPassword!.run(password, name).changes === 1;
  }

  async setRoles(name: string, roles: readonly string[]): Promise<boolean> {
    this.#open();
    return this.#q.setRoles!.run(JSON.stringify(roles), name).changes === 1;
  }

  async deleteUser(name: string): Promise<boolean> {
    const db = this.#open();
    return db.transaction(() => {
      this.#q.deleteMessages!.run(name);
      return this.#q.deleteUser!.run(name).changes === 1;
    })();
  }

  async enqueue(user: string, name: string, body: Uint8Array, sentAt: number, max: number): Promise<number | null> {
    const db = this.#open();
    // Count and insert in one transaction: two senders cannot both take the last free place.
    return db.transaction(() => {
      const { n } = this.#q.count!.get(user) as { n: number };
      if (n >= max) return null;
      return Number(this.#q.insert!.run(user, name, body, sentAt).lastInsertRowid);
    }).immediate();
  }

  async pending(user: string, afterId: number, limit: number): Promise<StoredMessage[]> {
    this.#open();
    const rows = this.#q.pending!.all(user, afterId, limit) as { id: number; name: string; body: Buffer; sent_at: number }[];
    return rows.map((r) => ({ id: r.id, name: r.name, body: r.body, sentAt: r.sent_at }));
  }

  async ack(user: string, upToId: number): Promise<number> {
    this.#open();
    return this.#q.ack!.run(user, upToId).changes;
  }

  async pendingCount(user: string): Promise<number> {
    this.#open();
    return (this.#q.count!.get(user) as { n: number }).n;
  }

  close(): void {
    this.#db?.close();
    this.#db = null;
  }

  #open(): Database {
    if (this.#db === null) throw new ConnectionClosedError('SqliteSessionStore: used after it was closed');
    return this.#db;
  }
}

/** Applies the migrations `db` lacks, each in a transaction with its row in schema_versions. */
function migrate(db: Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_versions (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const applied = new Set((db.prepare('SELECT version FROM schema_versions').all() as { version: number }[]).map((r) => r.version));
  const record = db.prepare('INSERT INTO schema_versions (version, applied_at) VALUES (?, ?)');
  for (const m of MIGRATIONS) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      record.run(m.version, Date.now());
    }).immediate();
  }
}
