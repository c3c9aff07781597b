/**
 * The command names lib/session registers on each side, in one place for the server half
 * (sessions.ts) and the client half (client.ts). They start with `zs.` so they do not meet
 * application commands; docs/session.md lists what each carries.
 */
export const Cmd = {
  /** server, stream, public: [user, password] → empty. */
  Register: 'zs.register',
  /** server, stream, public: [user, password, ackedUpTo float64] → [user, roles JSON]. */
  Login: 'zs.login',
  /** server, stream: [] → empty. */
  Logout: 'zs.logout',
  /** server, stream: [old password, new password] → empty. */
  ChangePassword: 'zs.passwd',
  /** server, stream: [password] → empty; the account and its waiting messages are deleted. */
  DeleteAccount: 'zs.unregister',
  /** server, console, public: '' → the server's clock in ms since the epoch, as decimal text. */
  Time: 'zs.time',
  /** client, direct stream: [name, body bytes] — a message to a logged-in user. */
  Message: 'zs.msg',
  /** client, stream: [id float64, name, body bytes, sentAt float64] → empty (the acknowledgement). */
  Offline: 'zs.offline',
  /** client, direct console: why the server ends this session (another login, account deleted). */
  Kicked: 'zs.kicked',
  /** server, stream, public: [token, last seq received] → [user, roles JSON, last seq received]. */
  Resume: 'zs.resume',
  /** server, direct stream: a sequenced message of a resumable session, client to server (link.ts). */
  ClientData: 'zs.c2s',
  /** client, direct stream: a sequenced message, server to client. */
  ServerData: 'zs.s2c',
  /** both sides, direct stream: [last seq received], the acknowledgement of the other side's messages. */
  Ack: 'zs.ack',
  /** client, console: '' → '' (Sessions.ping measures the round trip). */
  Ping: 'zs.ping',
} as const;

/** The clock both halves read: ms since the epoch with sub-millisecond resolution. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}
