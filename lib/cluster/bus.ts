/**
 * ClusterBus: what the cluster (cluster.ts) needs from a message bus, and nothing more:
 * publish, subscribe, one request with one answer, and one question with many answers. The
 * NATS implementation is nats-bus.ts; keeping this seam lets the framework hold an in-process
 * cluster without loading the NATS client until a bus is asked for.
 */

/** Answers the message being handled (it came with a reply subject); null when it did not. */
export type BusReply = ((answer: Uint8Array) => void) | null;

/** A subscription's handler; `data` is valid only during the call. */
export type BusHandler = (data: Uint8Array, reply: BusReply) => void;

/** A message bus shared by the nodes of a cluster group; see the file comment. */
export interface ClusterBus {
  /** False while the connection to the bus is down (it reconnects by itself). */
  readonly up: boolean;
  /** Largest message the bus takes, bytes. */
  readonly maxPayload: number;
  /** Publishes `data` on `subject`; throws NatsUnavailableError while the bus is down. */
  publish(subject: string, data: Uint8Array): void;
  /** Subscribes `handler` to `subject`; the returned function unsubscribes. */
  subscribe(subject: string, handler: BusHandler): () => void;
  /** One request, one answer within `timeout` ms; rejects with TimeoutError, NatsUnavailableError or ClusterError (ZS_CLUSTER_NO_PEER when nobody serves the subject). */
  request(subject: string, data: Uint8Array, timeout: number): Promise<Uint8Array>;
  /** Asks every subscriber of `subject`; resolves with the answers that came within `timeout` ms, early once `expected` came. */
  gather(subject: string, data: Uint8Array, expected: number, timeout: number): Promise<Uint8Array[]>;
  /** Resolves once everything published and subscribed so far reached the bus server. */
  flush(): Promise<void>;
  /** Calls `listener` when the connection goes down (false) or comes back (true). */
  onStatus(listener: (up: boolean) => void): void;
  /** Flushes what was published, then closes the connection if the bus opened it. */
  close(): Promise<void>;
}
