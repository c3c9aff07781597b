/**
 * Admission of new connections, shared by every transport that listens: the endpoint's
 * connection cap, the per-address cap and rate, and the user's accept hook, decided before
 * 'open' (so before any handshake or framework work is done for the connection).
 *
 * A transport calls admit() when a connection arrives and, for every connection admit() let
 * in, release() when it closes. admit() answers at once when no hook is set; with a hook it may
 * answer with a promise, during which the transport must not read from the connection.
 *
 *   const verdict = admission.admit(info);
 *   if (verdict === true) open(conn);
 *   else if (typeof verdict === 'string') refuse(conn, verdict);  // close, reason 'refused', no 'open'
 *   else { pauseReading(conn); verdict.then((v) => (v === true ? open(conn) : refuse(conn, v))); }
 *
 * Counting is by remote address string; IPv4-mapped IPv6 addresses count as their IPv4 form.
 */
import { describe } from '../bytes.js';
import type { AcceptHook, AcceptInfo, ListenOptions } from './types.js';

export const DEFAULT_MAX_CONNECTIONS = 65_536;
export const DEFAULT_ACCEPT_TIMEOUT = 10_000;

/** ListenOptions' admission fields with defaults filled in. */
export interface AdmissionOptions {
  maxConnections: number;
  maxConnectionsPerIp: number;
  connectionRatePerIp: number;
  accept: AcceptHook | undefined;
  acceptTimeout: number;
}

function checkCount(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1) {
    throw new RangeError(`${name} must be an integer from 0 to 2^31-1, got ${describe(value)}`);
  }
  return value;
}

/** Fills the admission defaults in and checks them (RangeError / TypeError naming the field). */
export function resolveAdmission(options: ListenOptions = {}): AdmissionOptions {
  const accept = options.accept;
  if (accept !== undefined && typeof accept !== 'function') {
    throw new TypeError(`accept must be a function (info) => boolean | Promise<boolean>, got ${describe(accept)}`);
  }
  return {
    maxConnections: checkCount(options.maxConnections ?? DEFAULT_MAX_CONNECTIONS, 'maxConnections'),
    maxConnectionsPerIp: checkCount(options.maxConnectionsPerIp ?? 0, 'maxConnectionsPerIp'),
    connectionRatePerIp: checkCount(options.connectionRatePerIp ?? 0, 'connectionRatePerIp'),
    accept,
    acceptTimeout: checkCount(options.acceptTimeout ?? DEFAULT_ACCEPT_TIMEOUT, 'acceptTimeout'),
  };
}

/** Why admit() said no, for the close event's detail and the refusal counters. */
export type RefusalReason = 'max-connections' | 'per-ip' | 'rate' | 'hook' | 'hook-timeout' | 'hook-error';

/** admit()'s answer: true (admitted) or why not. */
export type AdmitVerdict = true | RefusalReason;

/** The close detail of a refused connection. */
export function refusalDetail(reason: RefusalReason): string {
  switch (reason) {
    case 'max-connections':
      return 'the endpoint has maxConnections open connections';
    case 'per-ip':
      return 'this address has maxConnectionsPerIp open connections';
    case 'rate':
      return 'this address opened more than connectionRatePerIp connections in the last second';
    case 'hook':
      return 'the accept hook said no';
    case 'hook-timeout':
      return 'the accept hook did not answer within acceptTimeout';
    case 'hook-error':
      return 'the accept hook threw';
  }
}

interface AddressState {
  open: number;
  /** Token bucket of the connection rate: tokens left and when it was last refilled (ms). */
  tokens: number;
  refilled: number;
}

/** Per-address state kept at most for this many addresses at once; idle ones are dropped first. */
const MAX_TRACKED_ADDRESSES = 1 << 20;

/** One listening endpoint's admission state. See the file comment. */
export class Admission {
  readonly options: AdmissionOptions;
  #open = 0;
  readonly #byAddress = new Map<string, AddressState>();
  /** Counts of refusals by reason since creation. */
  readonly refused: Record<RefusalReason, number> = { 'max-connections': 0, 'per-ip': 0, rate: 0, hook: 0, 'hook-timeout': 0, 'hook-error': 0 };

  constructor(options: ListenOptions = {}) {
    this.options = resolveAdmission(options);
  }

  /** Connections admitted and not yet released. */
  get open(): number {
    return this.#open;
  }

  /**
   * Decides on a new connection: true (admitted: call release() when it closes), the reason of a
   * refusal, or a promise of either when the accept hook answered with one (the connection is
   * counted as open meanwhile, and released by admit itself when refused).
   */
  admit(info: AcceptInfo, now = Date.now()): AdmitVerdict | Promise<AdmitVerdict> {
    const o = this.options;
    if (this.#open >= o.maxConnections) return this.#refuse('max-connections');
    const address = normalAddress(info.remoteAddress);
    const perAddress = o.maxConnectionsPerIp > 0 || o.connectionRatePerIp > 0;
    let state: AddressState | undefined;
    if (perAddress) {
      state = this.#byAddress.get(address);
      if (state === undefined) {
        if (this.#byAddress.size >= MAX_TRACKED_ADDRESSES) this.#forgetIdle();
        state = { open: 0, tokens: o.connectionRatePerIp, refilled: now };
        this.#byAddress.set(address, state);
      }
      if (o.maxConnectionsPerIp > 0 && state.open >= o.maxConnectionsPerIp) return this.#refuse('per-ip');
      if (o.connectionRatePerIp > 0) {
        const rate = o.connectionRatePerIp;
        state.tokens = Math.min(rate, state.tokens + ((now - state.refilled) * rate) / 1000);
        state.refilled = now;
        if (state.tokens < 1) return this.#refuse('rate');
        state.tokens -= 1;
      }
    }
    this.#open++;
    if (state !== undefined) state.open++;
    if (o.accept === undefined) return true;
    let verdict: unknown;
    try {
      verdict = o.accept(info);
    } catch {
      this.release(info.remoteAddress);
      return this.#refuse('hook-error');
    }
    if (verdict === true) return true;
    if (verdict !== null && typeof verdict === 'object' && typeof (verdict as Promise<boolean>).then === 'function') {
      return this.#settle(verdict as Promise<boolean>, info.remoteAddress);
    }
    this.release(info.remoteAddress);
    return this.#refuse('hook');
  }

  /** Releases a connection that admit() let in (once, when it closes). */
  release(remoteAddress: string): void {
    if (this.#open > 0) this.#open--;
    if (this.options.maxConnectionsPerIp === 0 && this.options.connectionRatePerIp === 0) return;
    const address = normalAddress(remoteAddress);
    const state = this.#byAddress.get(address);
    if (state === undefined) return;
    if (state.open > 0) state.open--;
    if (state.open === 0 && state.tokens >= this.options.connectionRatePerIp) this.#byAddress.delete(address);
  }

  #refuse(reason: RefusalReason): RefusalReason {
    this.refused[reason]++;
    return reason;
  }

  async #settle(verdict: Promise<boolean>, remoteAddress: string): Promise<AdmitVerdict> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.options.acceptTimeout);
    });
    let outcome: boolean | 'timeout' | 'error';
    try {
      outcome = await Promise.race([verdict.then((v) => v === true), timeout]);
    } catch {
      outcome = 'error';
    } finally {
      clearTimeout(timer);
    }
    if (outcome === true) return true;
    this.release(remoteAddress);
    return this.#refuse(outcome === 'timeout' ? 'hook-timeout' : outcome === 'error' ? 'hook-error' : 'hook');
  }

  /** Drops the state of addresses with no open connection (their rate buckets start full again). */
  #forgetIdle(): void {
    for (const [address, state] of this.#byAddress) if (state.open === 0) this.#byAddress.delete(address);
  }
}

/** '::ffff:1.2.3.4' as '1.2.3.4', so one client counts once whichever socket family accepted it. */
function normalAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
