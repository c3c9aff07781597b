/**
 * The smallest typed event emitter the browser channel needs (on, off, once,
 * emit), since node:events is not available in a page. An 'error' emitted
 * with no listener throws, as with node:events.
 */
// Listeners are stored untyped; on() and emit() keep each event's arguments typed.
type Handler = (...args: unknown[]) => void;

/** Events keyed by name, each with its argument tuple. */
export class WebEmitter<Events extends { [K in keyof Events]: unknown[] }> {
  readonly #handlers = new Map<keyof Events, Handler[]>();

  /** Adds a listener. */
  on<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    this.#handlers.set(event, [...(this.#handlers.get(event) ?? []), listener as unknown as Handler]);
    return this;
  }

  /** Removes a listener added with on() or once(). */
  off<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    const list = this.#handlers.get(event);
    if (list) this.#handlers.set(event, list.filter((l) => (l as unknown) !== listener && (l as { inner?: unknown }).inner !== listener));
    return this;
  }

  /** Adds a listener that is removed after its first call. */
  once<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    const wrapper = Object.assign((...args: Events[K]) => {
      this.off(event, listener);
      listener(...args);
    }, { inner: listener });
    return this.on(event, wrapper);
  }

  /** Calls the listeners of `event` in the order they were added; true when there was one. */
  emit<K extends keyof Events>(event: K, ...args: Events[K]): boolean {
    const list = this.#handlers.get(event);
    if (!list || list.length === 0) {
      if (event === 'error') throw args[0];
      return false;
    }
    for (const l of list) l(...args);
    return true;
  }
}
