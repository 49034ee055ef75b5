/**
 * Inside a pool thread: the broker and result backend the thread's apps use. They hold no
 * connection; each call goes to the main thread, which owns the connections and answers.
 * So a task that sends tasks (`add.delay()`) or reads a result publishes through the
 * worker's own confirmed channel, and a thread opens nothing.
 */
import { EventEmitter } from 'node:events';
import type { ResultBackend, StoreContext } from '../../backend/types.js';
import type { Broker, BrokerEvents, Consumer, PublishRoute } from '../../broker/types.js';
import { BrokerError } from '../../errors.js';
import type { ResultMeta } from '../../protocol/result-meta.js';
import type { WireMessage } from '../../protocol/message.js';
import { rebuildError, type FromThread, type RpcReply } from './thread-messages.js';

type Pending = { resolve(value: unknown): void; reject(err: Error): void };

/** Requests to the main thread, matched with their replies by id. */
export class MainThreadRpc {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly post: (message: FromThread) => void) {}

  /** Sends a request (its `id` is filled in) and resolves with the main thread's answer. */
  call<T>(message: DistributiveOmit<Extract<FromThread, { id: number }>, 'id'>): Promise<T> {
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.post({ ...message, id } as FromThread);
    });
  }

  /** A reply arrived. */
  settle(reply: RpcReply): void {
    const pending = this.pending.get(reply.id);
    if (!pending) return;
    this.pending.delete(reply.id);
    if (reply.ok) pending.resolve(reply.value);
    else pending.reject(rebuildError(reply.error!));
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The broker a thread's apps see: publishes through the main thread; consuming is not a thread's job. */
export class ThreadBroker extends EventEmitter<BrokerEvents> implements Broker {
  constructor(
    private readonly rpc: MainThreadRpc,
    readonly displayUrl: string,
  ) {
    super();
  }

  publish(message: WireMessage, route: PublishRoute): Promise<void> {
    return this.rpc.call<void>({ t: 'publish', message, route });
  }

  consume(): Promise<Consumer> {
    return Promise.reject(new BrokerError('A worker thread cannot consume queues: the main thread of the worker does'));
  }

  connect(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The result backend a thread's apps see: every call is answered by the main thread's backend. */
export class ThreadBackend implements ResultBackend {
  readonly beforePublish?: () => Promise<void>;

  constructor(
    private readonly rpc: MainThreadRpc,
    readonly displayUrl: string,
    withBeforePublish: boolean,
  ) {
    // Only when the main backend has it (rpc://): otherwise each send would cost a round trip.
    if (withBeforePublish) this.beforePublish = () => this.rpc.call<void>({ t: 'backend', method: 'beforePublish', args: [] });
  }

  store(meta: ResultMeta, context?: StoreContext): Promise<void> {
    return this.rpc.call<void>({ t: 'backend', method: 'store', args: [meta, context] });
  }

  get(taskId: string): Promise<ResultMeta | null> {
    return this.rpc.call<ResultMeta | null>({ t: 'backend', method: 'get', args: [taskId] });
  }

  waitForReady(taskId: string, timeoutMs: number | null): Promise<ResultMeta> {
    return this.rpc.call<ResultMeta>({ t: 'backend', method: 'waitForReady', args: [taskId, timeoutMs] });
  }

  forget(taskId: string): Promise<void> {
    return this.rpc.call<void>({ t: 'backend', method: 'forget', args: [taskId] });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
