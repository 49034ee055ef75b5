/**
 * Sending events, as Celery's `EventDispatcher`: each event is stamped with
 * the hostname, UTC offset, pid and the app's Lamport clock, and published
 * fire-and-forget (no confirm) to the `celeryev` topic exchange (fanout on
 * Redis). Events of the groups in `bufferGroups` (a worker's `task` events)
 * are collected and sent as one list with routing key `<group>.multi`, as
 * Celery's worker batches them: after 24 events (Celery's `buffer_limit`), or
 * {@link FLUSH_DELAY_MS} after the first one waiting, whichever comes first.
 * Celery flushes on its event loop's next iteration; a short delay instead
 * keeps batches full while the worker is busy (one publish per 24 events,
 * not one per loop turn), and events no later than a monitor notices.
 *
 * When the broker cannot take a message (connection down), the events are
 * kept (at most {@link MAX_OUTBOUND}) and sent with the next flush, as
 * Celery's `buffer_while_offline` does.
 */
import type { Broker, ExchangeDeclaration } from '../broker/types.js';
import type { LamportClock } from '../support/clock.js';
import { getLogger } from '../support/log.js';
import { buildEventMessage, groupOf, utcOffsetHours } from './event.js';

const log = getLogger('MainProcess');

/** Events kept for resending while the broker is unreachable. */
export const MAX_OUTBOUND = 10_000;
/** Celery's `buffer_limit`. */
export const BUFFER_LIMIT = 24;
/** Longest a buffered event waits for its batch to fill. */
export const FLUSH_DELAY_MS = 20;

export interface EventDispatcherOptions {
  /** Sender name: the worker's nodename, or `gen<pid>@host` for a producer. */
  hostname: string;
  broker: () => Broker;
  clock: LamportClock;
  /** The `celeryev` exchange, or a function giving it at the first send (its type depends on the broker). */
  exchange: ExchangeDeclaration | (() => ExchangeDeclaration);
  /** Groups sent (`worker`, `task`); null = every group. */
  groups?: string[] | null;
  /** Groups sent batched as `<group>.multi` lists. */
  bufferGroups?: string[];
  /** False = send nothing. */
  enabled?: boolean;
}

/** Epoch seconds with microseconds, as Python's `time.time()`. */
function nowSeconds(): number {
  return (performance.timeOrigin + performance.now()) / 1000;
}

interface Outbound {
  /** The message body: one event's JSON, or a JSON list of them. */
  json: string;
  routingKey: string;
  size: number;
}

export class EventDispatcher {
  readonly hostname: string;
  enabled: boolean;
  /** Groups sent; null = all. Remote control's enable/disable_events change it. */
  groups: Set<string> | null;
  private readonly bufferGroups: Set<string>;
  /** Buffered events per group, as JSON text (serialized as they are sent: nothing to copy later). */
  private readonly buffers = new Map<string, string[]>();
  /** `{"hostname": ..., "utcoffset": ..., "pid": ...,"clock":`: the start every event of this sender shares. */
  private head = '';
  private resolvedExchange: ExchangeDeclaration | null = null;
  /** Per event type: its group, routing key and the JSON it ends with. */
  private readonly types = new Map<string, { group: string; tail: string; routingKey: string }>();
  private flushScheduled = false;
  private readonly outbound: Outbound[] = [];
  private outboundEvents = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly pid = process.pid;
  private utcoffset = utcOffsetHours();
  private warnedOffline = false;

  constructor(private readonly options: EventDispatcherOptions) {
    this.hostname = options.hostname;
    this.enabled = options.enabled ?? true;
    this.groups = options.groups ? new Set(options.groups) : null;
    this.bufferGroups = new Set(options.bufferGroups ?? []);
    this.setHead();
  }

  private exchange(): ExchangeDeclaration {
    const ex = this.options.exchange;
    return (this.resolvedExchange ??= typeof ex === 'function' ? ex() : ex);
  }

  private setHead(): void {
    this.head = `{"hostname":${JSON.stringify(this.hostname)},"utcoffset":${this.utcoffset},"pid":${this.pid},"clock":`;
  }

  /** Would an event of this group be sent now? Lets callers skip building its fields. */
  wants(group: string): boolean {
    return this.enabled && (this.groups === null || this.groups.has(group));
  }

  /**
   * Sends (or buffers) one event with Celery's fields in Celery's order:
   * `hostname, utcoffset, pid, clock, <fields>, timestamp, type`. `fields`
   * must be JSON-serializable; never throws.
   */
  send(type: string, fields: Record<string, unknown> = {}): void {
    const own = JSON.stringify(fields);
    this.sendJson(type, own.length > 2 ? own.slice(1, -1) : '');
  }

  /**
   * `send()` with the event's own fields already written as JSON object
   * members (`"uuid":"...","result":"5"`, no braces). The event is written as
   * JSON text at once: a worker sends three per task, so no object copies
   * and no second serialization of the batch.
   */
  sendJson(type: string, fields: string): void {
    let t = this.types.get(type);
    if (!t) this.types.set(type, (t = { group: groupOf(type), tail: `,"type":${JSON.stringify(type)}}`, routingKey: type.replace(/-/g, '.') }));
    if (!this.wants(t.group)) return;
    const event = `${this.head}${this.options.clock.forward()}${fields ? ',' : ''}${fields},"timestamp":${nowSeconds()}${t.tail}`;
    if (this.bufferGroups.has(t.group)) {
      let buffer = this.buffers.get(t.group);
      if (!buffer) this.buffers.set(t.group, (buffer = []));
      buffer.push(event);
      if (buffer.length >= BUFFER_LIMIT) this.publishBuffer(t.group, buffer);
      else this.scheduleFlush();
      return;
    }
    this.publish(event, t.routingKey, 1);
    // Unbuffered events are rare (heartbeats every 2 s): a good moment to follow a DST change.
    this.refreshOffset();
  }

  private refreshOffset(): void {
    const offset = utcOffsetHours();
    if (offset !== this.utcoffset) {
      this.utcoffset = offset;
      this.setHead();
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setTimeout(() => {
      this.flushScheduled = false;
      this.flushBuffers();
    }, FLUSH_DELAY_MS).unref();
  }

  private publishBuffer(group: string, buffer: string[]): void {
    this.buffers.set(group, []);
    this.publish(`[${buffer.join(',')}]`, `${group}.multi`, buffer.length);
  }

  private flushBuffers(): void {
    this.resend();
    for (const [group, buffer] of this.buffers) if (buffer.length > 0) this.publishBuffer(group, buffer);
  }

  private publish(json: string, routingKey: string, size: number): void {
    let p: Promise<void>;
    try {
      const exchange = this.exchange();
      p = this.options.broker().publish(buildEventMessage(json, this.hostname), { exchange: exchange.name, routingKey, declareExchange: exchange }, { confirm: false });
    } catch (err) {
      p = Promise.reject(err);
    }
    const tracked = p.then(
      () => {
        this.warnedOffline = false;
      },
      (err: unknown) => this.keep({ json, routingKey, size }, err),
    );
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
  }

  /** A publish failed: keep it for the next flush, dropping the oldest past the bound. */
  private keep(item: Outbound, err: unknown): void {
    if (!this.warnedOffline) {
      this.warnedOffline = true;
      log.warning(`events: cannot send to the broker, keeping events to resend (${(err as Error)?.message ?? err})`);
    }
    this.outbound.push(item);
    this.outboundEvents += item.size;
    while (this.outboundEvents > MAX_OUTBOUND && this.outbound.length > 1) this.outboundEvents -= this.outbound.shift()!.size;
  }

  private resend(): void {
    if (this.outbound.length === 0) return;
    const items = this.outbound.splice(0);
    this.outboundEvents = 0;
    for (const item of items) this.publish(item.json, item.routingKey, item.size);
  }

  /** Sends everything buffered now and waits until it was handed to the broker. */
  async flush(): Promise<void> {
    this.flushBuffers();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Flushes, then sends nothing more. */
  async close(): Promise<void> {
    await this.flush();
    this.enabled = false;
  }
}
