/**
 * Celery's `rpc://` result backend: results travel back over AMQP to the
 * process that sent the task, as Python does it.
 *
 * The caller declares a reply queue named after its app oid (the `reply_to`
 * of every task it sends) before publishing, and consumes it. Workers send
 * each state change there. Only the sending process can read a result, and
 * only while it runs: replies are kept in memory (the most recent
 * {@link MAX_KEPT} task ids), as in Celery.
 */
import type { Broker, Consumer } from '../broker/types.js';
import { BackendError, ImproperlyConfigured } from '../errors.js';
import { decodeJson } from '../protocol/json.js';
import { READY_STATES, type ResultMeta } from '../protocol/result-meta.js';
import { buildRpcReply, rpcReplyQueue } from '../protocol/rpc.js';
import type { ResultBackend, StoreContext } from './types.js';
import { ReadyWaiters } from './waiters.js';

/** Task states remembered at most (oldest forgotten first). */
export const MAX_KEPT = 10_000;

export interface RpcBackendOptions {
  /** The app's broker (the same connection tasks go out on). */
  broker: () => Broker;
  /** The app's oid: its reply queue's name and every task's `reply_to`. */
  oid: string;
  /** `result_expires`: the reply queue's x-expires. */
  expires: number | null;
  /** `result_persistent`: replies as persistent messages. */
  persistent: boolean;
}

export class RpcBackend implements ResultBackend {
  readonly displayUrl = 'rpc://';
  private consumer: Promise<Consumer> | null = null;
  private readonly states = new Map<string, ResultMeta>();
  private readonly waiters = new ReadyWaiters();

  constructor(private readonly options: RpcBackendOptions) {}

  /** Declares and consumes this app's reply queue (once). */
  beforePublish(): Promise<void> {
    if (!this.consumer) {
      const queue = rpcReplyQueue(this.options.oid, this.options.expires);
      this.consumer = this.options.broker().consume(queue, {
        prefetch: 0,
        onDelivery: (delivery) => {
          // Replies are informational copies of a state: take them as they come.
          delivery.ack();
          this.onReply(delivery.message.body, delivery.message.correlationId);
        },
      });
      this.consumer.catch(() => {
        this.consumer = null;
      });
    }
    return this.consumer.then(() => undefined);
  }

  private onReply(body: Buffer, correlationId: string | undefined): void {
    let meta: ResultMeta;
    try {
      meta = decodeJson(body.toString('utf8')) as ResultMeta;
    } catch {
      return;
    }
    const id = (typeof meta?.task_id === 'string' && meta.task_id) || correlationId;
    if (!id || typeof meta.status !== 'string') return;
    const previous = this.states.get(id);
    if (previous && READY_STATES.has(previous.status)) return; // a late STARTED must not undo SUCCESS
    this.states.delete(id);
    this.states.set(id, { ...meta, task_id: id, date_done: meta.date_done ?? null, children: meta.children ?? [], traceback: meta.traceback ?? null });
    if (this.states.size > MAX_KEPT) this.states.delete(this.states.keys().next().value as string);
    if (READY_STATES.has(meta.status)) this.waiters.settle(id, this.states.get(id)!);
  }

  async store(meta: ResultMeta, context?: StoreContext): Promise<void> {
    // No reply_to: nobody asked for rpc results (Celery stores nothing either).
    if (!context?.replyTo) return;
    try {
      await this.options.broker().publish(buildRpcReply(meta, context.correlationId, this.options.persistent), {
        exchange: '',
        routingKey: context.replyTo,
      });
    } catch (err) {
      throw new BackendError(`rpc:// could not send the ${meta.status} state of task ${meta.task_id}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** As Celery's rpc backend: no chords (nothing stores the header's results for the last member to join). */
  ensureChordsAllowed(): void {
    throw new ImproperlyConfigured(
      'The rpc:// result backend does not support chords (result_backend = "rpc://"): a chord needs a result ' +
        'store that every worker can read, to count its header. Note that a group chained with a task is also ' +
        'upgraded to a chord. Set result_backend to a redis:// URL to use chords.',
    );
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    await this.beforePublish();
    return this.states.get(taskId) ?? null;
  }

  async waitForReady(taskId: string, timeoutMs: number | null, signal?: AbortSignal): Promise<ResultMeta> {
    await this.beforePublish();
    const known = this.states.get(taskId);
    if (known && READY_STATES.has(known.status)) return known;
    return this.waiters.wait(taskId, timeoutMs, signal).promise;
  }

  async forget(taskId: string): Promise<void> {
    this.states.delete(taskId);
  }

  async close(): Promise<void> {
    const consumer = await this.consumer?.catch(() => null);
    this.consumer = null;
    await consumer?.close();
  }
}
