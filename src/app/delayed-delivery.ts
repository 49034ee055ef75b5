/**
 * When a task goes through RabbitMQ's native delayed delivery (Celery 5.5+),
 * and the topology that has to exist for it.
 *
 * Celery's rule (`app.send_task`): when the app uses quorum queues, a task
 * with a countdown or eta whose queue sits behind a topic (or fanout)
 * exchange is published to `celery_delayed_27` with the delay in its routing
 * key, so the broker holds it until it is due and no worker keeps it in
 * memory (quorum queues have no global QoS, so a held ETA task would block a
 * prefetch slot). Behind a direct exchange Celery logs a warning and sends it
 * as usual; the worker then holds it.
 *
 * Beyond Celery, the producer declares the delay topology and the bindings
 * that lead the message back to its queue before publishing: a confirm from
 * `celery_delayed_27` then means the message will reach the queue, even if no
 * worker has declared them yet (otherwise it would be dropped at the end of
 * its delay).
 */
import {
  calculateRoutingKey,
  delayTopology,
  deliveryBindings,
  entryExchangeName,
  MAX_NATIVE_DELAY_S,
  type DelayQueueType,
} from '../broker/native-delayed-delivery.js';
import type { PublishRoute, QueueDeclaration, TopologyDeclaration } from '../broker/types.js';
import { ImproperlyConfigured } from '../errors.js';
import { getLogger } from '../support/log.js';
import type { CelerySettings } from './config.js';

const log = getLogger('MainProcess');

/** A queue declared with `x-queue-type: quorum`. */
export function isQuorumQueue(q: QueueDeclaration): boolean {
  return q.arguments['x-queue-type'] === 'quorum';
}

/**
 * Celery's `detect_quorum_queues`: does the app declare any quorum queue?
 * (`task_queues` entries, the default queue, and `also`: the queue a task is
 * being routed to, as Celery's routing adds a missing queue to the app's
 * queues before it checks.)
 */
export function appUsesQuorumQueues(conf: CelerySettings, also?: QueueDeclaration | null): boolean {
  if (also && isQuorumQueue(also)) return true;
  if (conf.task_queues) return conf.task_queues.some((q) => q.queue_arguments?.['x-queue-type'] === 'quorum');
  return conf.task_default_queue_type === 'quorum';
}

const topologies = new Map<DelayQueueType, TopologyDeclaration>();

/** The `celery_delayed_*` topology (one shared object per queue type: brokers cache declarations by it). */
export function nativeDelayTopology(queueType: DelayQueueType): TopologyDeclaration {
  let t = topologies.get(queueType);
  if (!t) topologies.set(queueType, (t = delayTopology(queueType)));
  return t;
}

/**
 * The delay topology plus one task queue and the bindings leading to it, or
 * null when the queue's exchange is direct (unreachable from the delivery exchange).
 */
export function topologyForQueue(conf: CelerySettings, queue: QueueDeclaration): TopologyDeclaration | null {
  const bindings = deliveryBindings(queue);
  if (!bindings) return null;
  const delay = nativeDelayTopology(conf.broker_native_delayed_delivery_queue_type);
  return { exchanges: delay.exchanges, queues: [...delay.queues, queue], bindings: [...delay.bindings, ...bindings] };
}

const warnedDirect = new Set<string>();

/** Celery's warning for a quorum app's delayed task to a direct exchange (once per exchange here). */
function warnDirect(exchange: string): void {
  if (warnedDirect.has(exchange)) return;
  warnedDirect.add(exchange);
  log.warning(
    'Direct exchanges are not supported with native delayed delivery.\n' +
      `${exchange} is a direct exchange but should be a topic exchange or a fanout exchange in order for native delayed delivery to work properly.\n` +
      'If quorum queues are used, this task may block the worker process until the ETA arrives.',
  );
}

/**
 * The whole seconds a task due at `etaMs` waits in the delay queues: the
 * remaining fraction (under a second) the worker waits out, as Celery's
 * `int(countdown)` leaves it. Null when under a second.
 */
export function nativeDelaySeconds(etaMs: number, nowMs: number): number | null {
  const seconds = Math.floor((etaMs - nowMs) / 1000);
  if (seconds < 1) return null;
  if (seconds > MAX_NATIVE_DELAY_S) {
    throw new ImproperlyConfigured(
      `A countdown/eta ${seconds} s away is beyond what native delayed delivery can carry (${MAX_NATIVE_DELAY_S} s, about 8.5 years)`,
    );
  }
  return seconds;
}

/**
 * Where a task bound for `queue` and due at `etaMs` is published when native
 * delayed delivery applies to it (see the file comment), else null.
 * `transportHasTopology`: the broker can declare the topology (RabbitMQ).
 */
export function nativeDelayedRoute(
  conf: CelerySettings,
  queue: QueueDeclaration | null,
  etaMs: number | null,
  nowMs: number,
  transportHasTopology: boolean,
): PublishRoute | null {
  if (etaMs === null || !queue || !transportHasTopology || !appUsesQuorumQueues(conf, queue)) return null;
  const topology = topologyForQueue(conf, queue);
  if (!topology) {
    warnDirect(queue.exchange.name || '(the default exchange)');
    return null;
  }
  const seconds = nativeDelaySeconds(etaMs, nowMs);
  if (seconds === null) return null;
  return {
    exchange: entryExchangeName(),
    routingKey: calculateRoutingKey(seconds, queue.routingKey),
    declare: null,
    declareTopology: topology,
  };
}
