/**
 * The run request of `-P threads` as flat arrays. Every task crosses to a thread by structured
 * clone, and the clone writes, reads and re-interns every property name of every object, and
 * builds each object's shape again on the other side; a task message as an object is ~25 names.
 * A tuple in a fixed order carries the same values with none of the names: the
 * thread rebuilds the TaskMessage only when a task reads `self.request` or sends a task (its
 * `parent_id`), which a task that only computes never does.
 */
import type { DeliveryInfo } from '../../broker/types.js';
import { EMPTY_EMBED, NO_EXTRA_HEADERS, NO_TIME_LIMIT, type Embed, type TaskMessage } from '../../protocol/message.js';

/**
 * A TaskMessage's values in a fixed order. The shared frozen defaults of a parsed message
 * (EMPTY_EMBED, NO_TIME_LIMIT, NO_EXTRA_HEADERS) go as null and come back as the thread's own,
 * so identity tests on them hold in the thread too.
 */
export type MessageTuple = [
  id: string,
  task: string,
  args: unknown[],
  kwargs: Record<string, unknown>,
  embed: Embed | null,
  retries: number,
  eta: number | null,
  expires: number | null,
  rootId: string | null,
  parentId: string | null,
  group: string | null,
  groupIndex: number | null,
  shadow: string | null,
  timeLimit: [number | null, number | null] | null,
  ignoreResult: boolean,
  origin: string | null,
  argsrepr: string | null,
  kwargsrepr: string | null,
  replyTo: string | null,
  priority: number | null,
  extraHeaders: Record<string, unknown> | null,
  protocol: 1 | 2,
];

/** A DeliveryInfo's values in a fixed order. */
export type InfoTuple = [exchange: string, routingKey: string, redelivered: boolean, consumerTag: string, queue: string, priority: number | null];

/**
 * One run for a thread. `args` are the bound arguments the function is called with (often the
 * message's own `args` array: the clone sends a repeated reference once).
 */
export type RunPacket = [seq: number, task: string, args: unknown[], soft: number | null, message: MessageTuple, info: InfoTuple];

/** The main thread's side: a message as its tuple. */
export function messageToTuple(m: TaskMessage): MessageTuple {
  return [
    m.id, m.task, m.args, m.kwargs, m.embed === EMPTY_EMBED ? null : m.embed, m.retries, m.eta, m.expires, m.rootId, m.parentId,
    m.group, m.groupIndex, m.shadow, m.timeLimit === NO_TIME_LIMIT ? null : m.timeLimit, m.ignoreResult, m.origin, m.argsrepr,
    m.kwargsrepr, m.replyTo, m.priority, m.extraHeaders === NO_EXTRA_HEADERS ? null : m.extraHeaders, m.protocol,
  ];
}

/** The thread's side: the message back from its tuple. */
export function tupleToMessage(t: MessageTuple): TaskMessage {
  return {
    id: t[0], task: t[1], args: t[2], kwargs: t[3], embed: t[4] ?? EMPTY_EMBED, retries: t[5], eta: t[6], expires: t[7], rootId: t[8],
    parentId: t[9], group: t[10], groupIndex: t[11], shadow: t[12], timeLimit: t[13] ?? NO_TIME_LIMIT, ignoreResult: t[14], origin: t[15],
    argsrepr: t[16], kwargsrepr: t[17], replyTo: t[18], priority: t[19], extraHeaders: t[20] ?? NO_EXTRA_HEADERS, protocol: t[21],
  };
}

/** The main thread's side: delivery info as its tuple. */
export function infoToTuple(i: DeliveryInfo): InfoTuple {
  return [i.exchange, i.routingKey, i.redelivered, i.consumerTag, i.queue, i.priority];
}

/** The thread's side: delivery info back from its tuple. */
export function tupleToInfo(t: InfoTuple): DeliveryInfo {
  return { exchange: t[0], routingKey: t[1], redelivered: t[2], consumerTag: t[3], queue: t[4], priority: t[5] };
}
