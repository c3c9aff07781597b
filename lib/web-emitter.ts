/**
 * WebEventEmitter: the part of Node's EventEmitter that zserver's own classes
 * use (on/addListener, off/removeListener, once, emit, listenerCount,
 * removeAllListeners), typed by an event map, with no Node imports. It is
 * the base of BrowserWsTransport and, in the browser bundle, of Server and
 * Client (lib/platform.browser.ts exports it as EventEmitter). As in Node,
 * emitting 'error' with no listener throws the error.
 */
type AnyListener = ((...args: unknown[]) => void) & { listener?: AnyListener };
type EventMap<T> = Record<keyof T, unknown[]>;
type Key<T> = keyof T & (string | symbol);
type Listener<T extends EventMap<T>, K extends keyof T> = (...args: T[K]) => void;

/** See the file comment. */
export class WebEventEmitter<T extends EventMap<T> = Record<string, unknown[]>> {
  readonly #listeners = new Map<keyof T, AnyListener[]>();

  on<K extends Key<T>>(event: K, listener: Listener<T, K>): this {
    const l = listener as unknown as AnyListener;
    const list = this.#listeners.get(event);
    if (list) list.push(l);
    else this.#listeners.set(event, [l]);
    return this;
  }

  addListener<K extends Key<T>>(event: K, listener: Listener<T, K>): this {
    return this.on(event, listener);
  }

  off<K extends Key<T>>(event: K, listener: Listener<T, K>): this {
    const list = this.#listeners.get(event);
    if (!list) return this;
    // The last registration goes first, as in Node; once-wrappers match their listener.
    const target = listener as unknown as AnyListener;
    for (let i = list.length - 1; i >= 0; i--) {
      const l = list[i]!;
      if (l === target || l.listener === target) {
        list.splice(i, 1);
        break;
      }
    }
    if (list.length === 0) this.#listeners.delete(event);
    return this;
  }

  removeListener<K extends Key<T>>(event: K, listener: Listener<T, K>): this {
    return this.off(event, listener);
  }

  once<K extends Key<T>>(event: K, listener: Listener<T, K>): this {
    const wrapped = Object.assign(
      (...args: T[K]) => {
        this.off(event, wrapped);
        listener(...args);
      },
      { listener },
    );
    return this.on(event, wrapped);
  }

  emit<K extends Key<T>>(event: K, ...args: T[K]): boolean {
    const list = this.#listeners.get(event);
    if (!list || list.length === 0) {
      if (event === 'error') throw args[0] instanceof Error ? args[0] : new Error(`unhandled 'error' event: ${String(args[0])}`);
      return false;
    }
    // A copy: listeners added or removed by a listener take effect from the next emit.
    for (const l of list.slice()) l(...(args as unknown[]));
    return true;
  }

  listenerCount(event: Key<T>): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  removeAllListeners(event?: Key<T>): this {
    if (event === undefined) this.#listeners.clear();
    else this.#listeners.delete(event);
    return this;
  }
}
