/**
 * Where a not-yet-due ETA task waits, and the worker's side of native
 * delayed delivery (Celery 5.7's `DelayedDelivery` consumer bootstep).
 *
 * - At start-up (and after each reconnect) a worker of an app with quorum
 *   queues declares the `celery_delayed_*` topology
 *   (`broker_native_delayed_delivery_queue_type`) and binds each of its
 *   queues behind a topic/fanout exchange to `celery_delayed_delivery`, as
 *   Celery's bootstep does; queues behind a direct exchange get Celery's warning.
 * - An ETA task that reaches a quorum queue early (sent by a producer that
 *   does not use native delayed delivery, or the rest of a delay) is sent
 *   back through `celery_delayed_27` for its whole remaining seconds and
 *   acked once RabbitMQ confirmed the copy: it never waits in the worker's
 *   memory, where it would hold one of the consumer's fixed (per-consumer
 *   QoS) prefetch slots. Only a remainder under a second is held, and so are
 *   ETA tasks of quorum queues behind a direct exchange (as in Celery).
 * - Classic queues keep ts-celery's own rule: held in memory up to
 *   `worker_eta_max_hold` and `worker_eta_task_limit`, parked in the broker's
 *   delay queues (delay-queues.ts) beyond that.
 */
import type { Celery } from '../app/celery.js';
import { appUsesQuorumQueues, isQuorumQueue, nativeDelayTopology, topologyForQueue } from '../app/delayed-delivery.js';
import { queueDeclaration } from '../app/routing.js';
import { calculateRoutingKey, entryExchangeName, MAX_NATIVE_DELAY_S } from '../broker/native-delayed-delivery.js';
import type { Broker, Delivery, QueueDeclaration } from '../broker/types.js';
import { republishable } from '../protocol/message.js';
import { getLogger } from '../support/log.js';

const log = getLogger('MainProcess');

/** Moves a delivery into the broker for (about) `waitMs`; resolves with the delay used, or null. */
export type Parker = (delivery: Delivery) => Promise<number | null>;

export class EtaPlacement {
  private broker: Broker | null = null;
  private queues: QueueDeclaration[] = [];

  constructor(
    private readonly app: Celery,
    /** `worker_eta_max_hold` in ms. */
    private readonly maxHoldMs: number,
  ) {}

  /**
   * Celery's DelayedDelivery bootstep: declares the delay topology and binds
   * the worker's queues (and every `task_queues` entry), when the app uses
   * quorum queues and the broker is RabbitMQ. Failures are logged, never
   * fatal, as in Celery; it runs again after every reconnect.
   */
  async start(broker: Broker, consumed: QueueDeclaration[]): Promise<void> {
    this.broker = broker;
    const conf = this.app.conf;
    const listed = (conf.task_queues ?? []).map((q) => queueDeclaration(conf, q.name));
    const byName = new Map<string, QueueDeclaration>();
    for (const q of [...consumed, ...listed]) if (!byName.has(q.name)) byName.set(q.name, q);
    this.queues = [...byName.values()];
    if (!broker.declareTopology || !this.queues.some((q) => appUsesQuorumQueues(conf, q))) return;
    broker.on('resumed', this.onResumed);
    await this.setUp();
  }

  /** Stops re-declaring after reconnects. */
  stop(): void {
    this.broker?.off('resumed', this.onResumed);
  }

  private readonly onResumed = (): void => {
    void this.setUp();
  };

  private async setUp(): Promise<void> {
    const broker = this.broker!;
    const conf = this.app.conf;
    const queueType = conf.broker_native_delayed_delivery_queue_type;
    log.debug(`Setting up delayed delivery for broker ${broker.connectedUrl ?? broker.displayUrl} with queue type '${queueType}'`);
    try {
      await broker.declareTopology!(nativeDelayTopology(queueType));
    } catch (err) {
      log.warning(`Failed to declare exchanges and queues for ${broker.displayUrl}: ${(err as Error).message}`);
      return;
    }
    for (const queue of this.queues) {
      const topology = topologyForQueue(conf, queue);
      if (!topology) {
        log.warning(
          `Exchange ${queue.exchange.name || "''"} is a direct exchange and native delayed delivery do not support direct exchanges.\n` +
            'ETA tasks published to this exchange will block the worker until the ETA arrives.',
        );
        continue;
      }
      try {
        log.debug(`Binding queue '${queue.name}' to delayed delivery exchange`);
        await broker.declareTopology!(topology);
      } catch (err) {
        log.error(`Failed to bind queue '${queue.name}': ${(err as Error).message}`);
      }
    }
  }

  /**
   * How an ETA task from `queue`, due in `waitMs`, waits: a {@link Parker}
   * that moves it into the broker, or null to hold it in memory.
   */
  parker(queue: QueueDeclaration, waitMs: number, roomToHold: boolean): Parker | null {
    const broker = this.broker;
    if (!broker) return null;
    if (isQuorumQueue(queue)) {
      const seconds = Math.min(MAX_NATIVE_DELAY_S, Math.floor(waitMs / 1000));
      const topology = broker.declareTopology ? topologyForQueue(this.app.conf, queue) : null;
      // Never the classic delay queues for a quorum queue: a sub-second rest, or a direct exchange, is held.
      if (seconds < 1 || !topology) return null;
      return async (delivery) => {
        await broker.publish(republishable(delivery.message), {
          exchange: entryExchangeName(),
          routingKey: calculateRoutingKey(seconds, queue.routingKey),
          declare: null,
          declareTopology: topology,
        });
        return seconds * 1000;
      };
    }
    if (broker.park && (waitMs > this.maxHoldMs || !roomToHold)) return (delivery) => broker.park!(delivery, waitMs);
    return null;
  }

  /**
   * Whether holding an ETA task of `queue` raises its consumer's prefetch (as
   * Celery does): not on quorum queues, whose per-consumer limit is fixed for
   * the consumer's life (Celery's `qos_global = False`).
   */
  holdRaisesPrefetch(queue: QueueDeclaration): boolean {
    return !isQuorumQueue(queue);
  }
}
