/**
 * Log hygiene of the framework. Peers choose command names, error messages
 * and abort reasons, and some of that text ends up in log lines; a terminal
 * or log viewer would act on escape sequences in it (move the cursor, rewrite
 * earlier lines, change the title), and a newline would forge a whole line.
 * So every log line is passed through `escapeLogText()`, and the pieces a
 * peer chose are also capped in length with `peerText()` where they are put
 * into a message. A peer that sends unknown commands in a loop would also
 * flood the log: `LogLimiter` lets a few lines a second through and then
 * writes one summary line with how many it suppressed.
 */

/** Longest piece of peer-chosen text put into a log line, in characters. */
export const MAX_PEER_TEXT = 120;

// C0 controls, DEL, C1 controls, and the bidirectional overrides and isolates that reorder what
// a reader sees (U+202A–U+202E, U+2066–U+2069).
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

function escapeChar(c: string): string {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** `text` with control bytes and escape sequences shown as \xNN (\uNNNN above 0xff). */
export function escapeLogText(text: string): string {
  return text.replace(UNSAFE, escapeChar);
}

/** Peer-chosen `text` fit for a log line: escaped and cut to `max` characters, saying how many were left out. */
export function peerText(text: string, max = MAX_PEER_TEXT): string {
  const cut = text.length > max ? `${text.slice(0, max)}…(+${text.length - max} chars)` : text;
  return escapeLogText(cut);
}

/**
 * At most `perSecond` lines in each one-second window; the lines beyond are counted and, when
 * the window ends, reported in one line "suppressed K log lines in the last second".
 */
export class LogLimiter<Level extends string> {
  readonly #perSecond: number;
  readonly #write: (level: Level, message: string) => void;
  readonly #summaryLevel: Level;
  #windowStart = 0;
  #written = 0;
  #suppressed = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;

  /** The summary line is written at `summaryLevel`. */
  constructor(perSecond: number, summaryLevel: Level, write: (level: Level, message: string) => void) {
    this.#perSecond = perSecond;
    this.#summaryLevel = summaryLevel;
    this.#write = write;
  }

  /** Lines suppressed since this limiter was made. */
  suppressedTotal = 0;

  /** Writes `message` unless this window's lines are used up; returns whether it was written. */
  line(level: Level, message: string): boolean {
    const now = Date.now();
    if (now - this.#windowStart >= 1000) {
      this.#flush();
      this.#windowStart = now;
      this.#written = 0;
    }
    if (this.#written < this.#perSecond) {
      this.#written++;
      this.#write(level, message);
      return true;
    }
    this.#suppressed++;
    this.suppressedTotal++;
    // The summary is written when the window ends even if no further line comes to trigger it.
    if (this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#flush();
      }, Math.max(1, this.#windowStart + 1000 - now));
      this.#timer.unref?.();
    }
    return false;
  }

  #flush(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#suppressed === 0) return;
    const k = this.#suppressed;
    this.#suppressed = 0;
    this.#write(this.#summaryLevel, `suppressed ${k} log line${k === 1 ? '' : 's'} in the last second (more than ${this.#perSecond} a second)`);
  }
}
