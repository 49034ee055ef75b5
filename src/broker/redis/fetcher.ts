/**
 * The consume loop of the Redis transport: takes messages for every consumer
 * that has room, without a moment where a message is neither in its queue
 * nor recorded in `unacked`.
 *
 * - Fetch: one FETCH script call pops up to each consumer's room from its
 *   lists (kombu's order: by priority step, then queue) and records each
 *   message in `unacked`/`unacked_index` in the same atomic step.
 * - Wait: when every list is empty, one blocking connection per list waits
 *   with `BLMOVE list list RIGHT RIGHT` (Redis >= 6.2), a peek that returns
 *   as soon as the list has an element and leaves it where it is; then the
 *   loop fetches again. kombu's BRPOP pops the message in the wait itself,
 *   so a reply lost with the connection loses the message; a lost peek loses
 *   nothing.
 * - A consumer wants messages when a quarter of its prefetch window is free
 *   (see RedisConsumer.wantsMore), so a busy worker fetches in batches; the
 *   window is then refilled by up to MAX_IN_FLIGHT fetches at once, so Redis
 *   runs the next script while this process reads the last reply.
 */
import type { Redis } from 'ioredis';
import type { ScriptedRedis } from './client.js';
import type { RedisConsumer } from './consumer.js';
import { RedisDelivery } from './consumer.js';
import { readEnvelope } from './envelope.js';
import { QueueCycle, type KeySpace, type QueueOrderStrategy } from './keys.js';

/** Messages per consumer per fetch at most: bounds the time the script holds Redis (a few ms). */
export const MAX_FETCH = 256;
/** Fetches sent at once when a window is refilled. */
export const MAX_IN_FLIGHT = 2;
const RETRY_MS = 500;

export interface FetcherOptions {
  keySpace: KeySpace;
  indexKey: string;
  hashKey: string;
  strategy: QueueOrderStrategy;
  /** Seconds a blocking wait lasts before it is re-issued (kombu's brpop_timeout). */
  blockSeconds: number;
  /** A new connection for one blocking wait. */
  blockingClient(): Redis;
  /** A fetch or a wait failed (Redis unreachable, a key of the wrong type...). */
  onError(err: Error): void;
}

/** Waits on one list with a peek that leaves the list unchanged. */
class ListWatcher {
  private armed = false;
  private running = false;
  private client: Redis | null = null;
  private closed = false;

  constructor(
    readonly key: string,
    private readonly options: FetcherOptions,
    private readonly signal: (err?: Error) => void,
  ) {}

  arm(): void {
    if (this.closed) return;
    this.armed = true;
    if (!this.running) void this.run();
  }

  disarm(): void {
    this.armed = false;
  }

  private async run(): Promise<void> {
    this.running = true;
    this.client ??= this.options.blockingClient();
    try {
      while (this.armed) {
        const peeked = await this.client.blmove(this.key, this.key, 'RIGHT', 'RIGHT', this.options.blockSeconds);
        if (peeked !== null && this.armed) {
          this.armed = false;
          this.signal();
        }
      }
    } catch (err) {
      if (this.armed && !this.closed) {
        this.armed = false;
        this.signal(err instanceof Error ? err : new Error(String(err)));
      }
    } finally {
      this.running = false;
    }
  }

  close(): void {
    this.closed = true;
    this.armed = false;
    this.client?.disconnect();
  }
}

export class Fetcher {
  private readonly consumers: RedisConsumer[] = [];
  private readonly cycle: QueueCycle;
  private readonly watchers = new Map<string, ListWatcher>();
  private wake: (() => void) | null = null;
  private poked = false;
  private loop: Promise<void> | null = null;
  private stopped = false;
  /** Fetches sent and not answered yet (each reserved its consumers' room). */
  private inFlight = 0;
  /** The last fetch found every list empty: wait on the lists until one has a message. */
  private drained = false;
  /** After a failed fetch, the next waits until then (epoch ms). */
  private retryAt = 0;

  constructor(
    private readonly client: ScriptedRedis,
    private readonly options: FetcherOptions,
  ) {
    this.cycle = new QueueCycle(options.strategy);
  }

  add(consumer: RedisConsumer): void {
    this.consumers.push(consumer);
    this.cycle.update(this.consumers.map((c) => c.queue));
    this.loop ??= this.run();
    this.poke();
  }

  remove(consumer: RedisConsumer): void {
    const i = this.consumers.indexOf(consumer);
    if (i >= 0) this.consumers.splice(i, 1);
    this.cycle.update(this.consumers.map((c) => c.queue));
    this.poke();
  }

  /** Something changed (room, consumers, a list got a message, the connection came back): look again. */
  poke(): void {
    this.poked = true;
    this.wake?.();
  }

  /** Ends the loop after the fetch in flight (whose messages still reach their consumers). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.poke();
    await this.loop;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  private pause(ms?: number): Promise<void> {
    if (this.poked) {
      this.poked = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => done(), ms);
      const done = (): void => {
        if (timer) clearTimeout(timer);
        this.wake = null;
        this.poked = false;
        resolve();
      };
      this.wake = done;
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const wanting = this.consumers.filter((c) => c.wantsMore());
      const wait = this.retryAt - Date.now();
      if (wanting.length > 0 && wait > 0) {
        await this.pause(wait);
      } else if (wanting.length > 0 && !this.drained && this.inFlight === 0) {
        this.poked = false;
        // Refill: as many fetches at once as the free room needs, up to MAX_IN_FLIGHT.
        for (let n = 0; n < MAX_IN_FLIGHT; n++) {
          const withRoom = this.consumers.filter((c) => c.room() > 0);
          if (withRoom.length === 0) break;
          this.launch(withRoom);
        }
      } else if (wanting.length > 0 && this.drained && this.inFlight === 0) {
        // Every list was empty: block on them until one has a message (or something else changes).
        const armed = this.listsOf(wanting).map(({ key }) => this.watcher(key));
        for (const w of armed) w.arm();
        await this.pause();
        for (const w of armed) w.disarm();
        this.drained = false;
      } else {
        await this.pause();
      }
    }
    // The replies still on their way reach their consumers (which return them to the queue if stopped).
    while (this.inFlight > 0) await this.pause(RETRY_MS);
  }

  private launch(consumers: RedisConsumer[]): void {
    this.inFlight++;
    this.fetch(consumers)
      .then(
        (fetched) => {
          this.drained = fetched === 0;
        },
        (err: unknown) => {
          if (this.stopped) return;
          this.options.onError(err instanceof Error ? err : new Error(String(err)));
          this.retryAt = Date.now() + RETRY_MS;
        },
      )
      .finally(() => {
        this.inFlight--;
        this.poke();
      });
  }

  private watcher(key: string): ListWatcher {
    let w = this.watchers.get(key);
    if (!w) {
      w = new ListWatcher(key, this.options, (err) => {
        if (!err) return this.poke();
        if (this.stopped) return;
        this.options.onError(err);
        setTimeout(() => this.poke(), RETRY_MS).unref();
      });
      this.watchers.set(key, w);
    }
    return w;
  }

  /** The lists of these consumers in kombu's order: each priority step, then each queue in cycle order. */
  private listsOf(consumers: RedisConsumer[]): Array<{ key: string; slot: number }> {
    const { prefix, sep, steps } = this.options.keySpace;
    const lists: Array<{ key: string; slot: number }> = [];
    for (const step of steps) {
      consumers.forEach((c, i) => lists.push({ key: step ? `${prefix}${c.queue}${sep}${step}` : `${prefix}${c.queue}`, slot: i + 1 }));
    }
    return lists;
  }

  /** One fetch for these consumers; their room is reserved until the reply is handed over. */
  private async fetch(wanting: RedisConsumer[]): Promise<number> {
    const order = this.cycle.order();
    const slots = [...wanting].sort((a, b) => order.indexOf(a.queue) - order.indexOf(b.queue));
    const lists = this.listsOf(slots);
    const rooms = slots.map((c) => Math.min(c.room(), MAX_FETCH));
    slots.forEach((c, i) => c.reserve(rooms[i]!));
    const args: Array<string | number> = [
      (Date.now() / 1000).toFixed(6),
      slots.length,
      ...rooms,
      ...slots.map((c) => c.queue),
      ...slots.map((c) => (c.noAck ? '0' : '1')),
      ...lists.map((l) => l.slot),
    ];
    const { indexKey, hashKey } = this.options;
    let reply: Array<number | string | null>;
    try {
      reply = await this.client.tsFetch(2 + lists.length, indexKey, hashKey, ...lists.map((l) => l.key), ...args);
    } finally {
      slots.forEach((c, i) => c.reserve(-rooms[i]!));
    }
    let first: string | null = null;
    for (let i = 0; i < reply.length; i += 3) {
      const consumer = slots[lists[Number(reply[i]) - 1]!.slot - 1]!;
      const raw = String(reply[i + 1]);
      const tag = typeof reply[i + 2] === 'string' ? (reply[i + 2] as string) : null;
      const env = readEnvelope(raw, consumer.queue);
      first ??= consumer.queue;
      consumer.deliver(
        new RedisDelivery(
          env.message,
          {
            exchange: env.exchange,
            routingKey: env.routingKey,
            redelivered: env.redelivered,
            consumerTag: consumer.consumerTag,
            queue: consumer.queue,
            priority: env.message.priority ?? null,
          },
          tag,
          raw,
          consumer,
        ),
      );
    }
    if (first !== null) this.cycle.rotate(first);
    return reply.length / 3;
  }
}
