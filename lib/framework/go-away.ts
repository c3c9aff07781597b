/**
 * Go-away: the message a draining server sends each connected client (Server.drain(), docs/protocol.md,
 * "Go-away"). It is an ordinary DirectConsole message (kind 10) under a reserved command name, so
 * it needs no new frame kind and a client that does not know it only sees an unknown direct
 * command. The text is JSON: {"reason": string, "deadline": ms}: the server closes what is still
 * connected `deadline` ms after sending it.
 *
 * A client that knows it opens a new connection for new calls at once, lets the calls still
 * pending on the old connection finish there, and then closes the old connection itself.
 */

/** The reserved DirectConsole command name of the go-away message. */
export const GO_AWAY_COMMAND = 'zs.goaway';

/** What a go-away message says. */
export interface GoAway {
  /** Why the server goes away (free text: 'drain', 'rolling restart', ...). */
  reason: string;
  /** Milliseconds from the message until the server closes the connections still open. */
  deadline: number;
}

/** The DirectConsole text of a go-away message. */
export function encodeGoAway(g: GoAway): string {
  return JSON.stringify({ reason: g.reason, deadline: g.deadline });
}

/** Reads a go-away text; fields that are missing or malformed get neutral values (the message still means "go away"). */
export function decodeGoAway(text: string): GoAway {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = {};
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as { reason?: unknown; deadline?: unknown };
  return {
    reason: typeof o.reason === 'string' ? o.reason : '',
    deadline: typeof o.deadline === 'number' && o.deadline >= 0 ? o.deadline : 0,
  };
}
