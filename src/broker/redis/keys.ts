/**
 * Where kombu's Redis transport keeps things, as pure functions: queue lists
 * and their priority sub-queues, the `_kombu.binding.<exchange>` tables, topic
 * patterns, and the order queues are consumed in. Every name here was checked
 * against captures of Celery 5.7 and 5.2.6 (test/fixtures/celery-5.7/redis_broker_*.json).
 */

/** The layout options every key depends on (`broker_transport_options`). */
export interface KeySpace {
  /** `global_keyprefix`: prepended to every key kombu uses. */
  prefix: string;
  /** `sep`: between a queue name and its priority step (kombu: `\x06\x16`). */
  sep: string;
  /** `priority_steps`, ascending (kombu: `[0, 3, 6, 9]`). */
  steps: readonly number[];
}

export const DEFAULT_SEP = '\x06\x16';
export const DEFAULT_PRIORITY_STEPS: readonly number[] = [0, 3, 6, 9];

/**
 * A message's priority as kombu reads it (`_get_message_priority`): an
 * integer clamped to 0..9, 0 when absent or not a number.
 */
export function messagePriority(value: unknown): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n)) return 0;
  return Math.max(0, Math.min(9, Math.trunc(n)));
}

/**
 * The priority step a priority falls in: the largest step not above it
 * (kombu's `steps[bisect(steps, n) - 1]`, including Python's wrap-around to
 * the last step when every step is above `n`).
 */
export function priorityStep(steps: readonly number[], priority: number): number {
  let i = 0;
  while (i < steps.length && steps[i]! <= priority) i++;
  return i === 0 ? steps[steps.length - 1]! : steps[i - 1]!;
}

/**
 * The list a message of `priority` is pushed to: `<queue>` for step 0,
 * `<queue><sep><step>` otherwise. On Redis, lower steps are consumed first,
 * so priority 0 is the most urgent (the reverse of RabbitMQ).
 */
export function queueKey(ks: KeySpace, queue: string, priority: number): string {
  const step = priorityStep(ks.steps, messagePriority(priority));
  return step ? `${ks.prefix}${queue}${ks.sep}${step}` : `${ks.prefix}${queue}`;
}

/**
 * The lists to pop from, in kombu's BRPOP order: by priority step first,
 * then by queue (`[q_for_pri(q, pri) for pri in steps for q in queues]`).
 */
export function consumeKeys(ks: KeySpace, queues: readonly string[]): Array<{ key: string; queue: string }> {
  const out: Array<{ key: string; queue: string }> = [];
  for (const step of ks.steps) {
    for (const queue of queues) out.push({ key: step ? `${ks.prefix}${queue}${ks.sep}${step}` : `${ks.prefix}${queue}`, queue });
  }
  return out;
}

/** `_kombu.binding.<exchange>`: the set of bindings kombu routes named exchanges through. */
export function bindingKey(ks: KeySpace, exchange: string): string {
  return `${ks.prefix}_kombu.binding.${exchange}`;
}

/** `_kombu.binding_permanent.<exchange>` (kombu >= 5.6): bindings of queues without x-expires. */
export function bindingPermanentKey(ks: KeySpace, exchange: string): string {
  return `${ks.prefix}_kombu.binding_permanent.${exchange}`;
}

/** One binding as kombu stores it: `<routing key><sep><pattern><sep><queue>`. */
export function bindingMember(sep: string, routingKey: string, pattern: string, queue: string): string {
  return `${routingKey}${sep}${pattern}${sep}${queue}`;
}

/** A parsed binding member, or null when it does not have kombu's three fields. */
export function parseBindingMember(sep: string, member: string): { routingKey: string; pattern: string; queue: string } | null {
  const parts = member.split(sep);
  if (parts.length !== 3) return null;
  return { routingKey: parts[0]!, pattern: parts[1]!, queue: parts[2]! };
}

/**
 * kombu's topic binding pattern (`TopicExchange.key_to_pattern`): words
 * split on `.`, `*` = one word, `#` = any, everything else escaped.
 * `fx.#` -> `^fx\..*?$`.
 */
export function topicPattern(bindingKey: string): string {
  const escaped = [...bindingKey].map((c) => (/[\p{L}\p{N}]/u.test(c) || c === '.' || c === '#' || c === '*' ? c : c === '\0' ? '\\000' : `\\${c}`)).join('');
  return `^${escaped
    .split('.')
    .map((word) => (word === '*' ? '[^\\.]+' : word === '#' ? '.*?' : word))
    .join('\\.')}$`;
}

const compiled = new Map<string, RegExp | null>();

function patternRegExp(pattern: string): RegExp | null {
  let re = compiled.get(pattern);
  if (re === undefined) {
    try {
      // No 'u' flag: kombu escapes every punctuation character (`\-`, `\_`), which
      // unicode-mode regexes reject as invalid escapes.
      re = new RegExp(pattern);
    } catch {
      re = null; // a pattern JavaScript cannot compile matches nothing
    }
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re;
}

/**
 * The queues a message published to an exchange of `type` with `routingKey`
 * reaches, given the exchange's binding members (kombu's `lookup`): exact
 * key for direct, the stored regex for topic, every queue for fanout.
 */
export function routeThroughBindings(type: 'direct' | 'topic' | 'fanout', sep: string, members: readonly string[], routingKey: string): string[] {
  const queues = new Set<string>();
  for (const member of members) {
    const b = parseBindingMember(sep, member);
    if (!b) continue;
    if (type === 'fanout') queues.add(b.queue);
    else if (type === 'topic') {
      if (patternRegExp(b.pattern)?.test(routingKey)) queues.add(b.queue);
    } else if (b.routingKey === routingKey) queues.add(b.queue);
  }
  return [...queues];
}

/** kombu's `queue_order_strategy`. */
export type QueueOrderStrategy = 'round_robin' | 'sorted' | 'priority';

/**
 * The order queues are polled in, per `queue_order_strategy`: round_robin
 * moves the queue that last delivered to the end (so a busy queue cannot
 * starve the others), sorted polls alphabetically, priority in the order
 * the queues were given.
 */
export class QueueCycle {
  private items: string[] = [];

  constructor(private readonly strategy: QueueOrderStrategy) {}

  /** Replaces the set of queues, keeping the current order of those that stay. */
  update(queues: readonly string[]): void {
    const wanted = new Set(queues);
    const kept = this.items.filter((q) => wanted.has(q));
    for (const q of queues) if (!kept.includes(q)) kept.push(q);
    this.items = kept;
  }

  /** The queues in polling order. */
  order(): string[] {
    return this.strategy === 'sorted' ? [...this.items].sort() : [...this.items];
  }

  /** `queue` just delivered: with round_robin it goes to the end. */
  rotate(queue: string): void {
    if (this.strategy !== 'round_robin') return;
    const i = this.items.indexOf(queue);
    if (i >= 0 && i < this.items.length - 1) this.items.push(...this.items.splice(i, 1));
  }
}
