/**
 * `app.control`: Celery's remote-control client (`celery/app/control.py`),
 * for TypeScript and Python workers alike. Requests are broadcast on the
 * `celery.pidbox` fanout exchange; when a reply is wanted, replies come back
 * on this client's reply queue and are collected by ticket until `limit`
 * replies arrived or `timeout` seconds passed without one (kombu's
 * `Mailbox._collect`).
 *
 * ```ts
 * await app.control.inspect({ timeout: 2 }).ping();   // { 'celery@host': { ok: 'pong' } } or null
 * await app.control.revoke(taskId, { terminate: true });
 * await app.control.broadcast('rate_limit', { arguments: { task_name: 'tasks.add', rate_limit: '10/s' }, reply: true });
 * ```
 */
import { randomUUID } from 'node:crypto';
import type { Celery } from '../app/celery.js';
import type { Consumer } from '../broker/types.js';
import { ImproperlyConfigured } from '../errors.js';
import { getLogger } from '../support/log.js';
import { buildRequest, mailboxNames, parseReply, replyQueue, type ControlRequest } from './mailbox.js';

const log = getLogger('celery.app.control');

/** One node's reply, keyed by its node name (`{ 'celery@host': { ok: 'pong' } }`). */
export type NodeReply<T = unknown> = Record<string, T>;

export interface BroadcastOptions {
  /** The command's keyword arguments. */
  arguments?: Record<string, unknown>;
  /** Node names to ask; omitted or null = every worker. */
  destination?: string[] | null;
  /** Wait for replies (default false: a cast, as `revoke` is). */
  reply?: boolean;
  /** Seconds to wait for the next reply (default 1, as Celery). */
  timeout?: number;
  /** Stop after this many replies (default: the number of destinations). */
  limit?: number | null;
  /** Called with each reply as it arrives. */
  callback?: (reply: NodeReply) => void;
  /** Nodes whose name matches (with `matcher`: `glob` or `pcre`), instead of `destination`. */
  pattern?: string | null;
  matcher?: 'glob' | 'pcre' | null;
}

/** Who an inspect or control call goes to, and how long to wait. */
export interface TargetOptions {
  destination?: string[] | null;
  /** Seconds (default 1). */
  timeout?: number;
  limit?: number | null;
  callback?: (reply: NodeReply) => void;
  pattern?: string | null;
  matcher?: 'glob' | 'pcre' | null;
}

/** Options of a control command sent as a broadcast. */
export interface ControlCallOptions extends TargetOptions {
  /** Wait for and return the replies (default false). */
  reply?: boolean;
}

export interface RevokeOptions extends ControlCallOptions {
  /** Also stop the task if it is running (`self.signal` aborts; REVOKED `terminated`). */
  terminate?: boolean;
  /** Signal name for terminate (Celery's default `SIGTERM`). */
  signal?: string;
}

interface Collector {
  replies: NodeReply[];
  limit: number | null;
  callback: ((reply: NodeReply) => void) | undefined;
  bump(): void;
}

/** Python's `flatten_reply`: a list of `{node: reply}` into one object; warns on duplicate node names. */
export function flattenReplies<T>(replies: NodeReply<T>[]): NodeReply<T> {
  const out: NodeReply<T> = {};
  const dupes = new Set<string>();
  for (const item of replies) {
    for (const [node, reply] of Object.entries(item)) {
      if (node in out) dupes.add(node);
      out[node] = reply;
    }
  }
  if (dupes.size) {
    log.warning(`Received multiple replies from node ${[...dupes].sort().join(', ')}. Please make sure you give each node a unique nodename using the worker -n option.`);
  }
  return out;
}

export class Control {
  /** This client's mailbox id: its reply queue's name and routing key. */
  readonly oid = randomUUID();
  private replies: Promise<Consumer> | null = null;
  private readonly collectors = new Map<string, Collector>();

  constructor(private readonly app: Celery) {}

  /** Consumes this client's reply queue (declared and bound before the first request goes out). */
  private ensureReplyQueue(): Promise<Consumer> {
    if (!this.replies) {
      const decl = replyQueue(this.app.conf, this.oid);
      this.replies = this.app.broker.consume(decl, {
        prefetch: 0,
        noAck: true,
        onDelivery: (delivery) => {
          delivery.ack(); // a no-op with no-ack; needed by a broker without that mode
          const reply = parseReply(delivery.message);
          if (!reply) return;
          this.app.clock.adjust(reply.clock);
          // Replies for tickets nobody waits for any more (late, or another call's) are dropped.
          const c = reply.ticket === null ? undefined : this.collectors.get(reply.ticket);
          if (!c) return;
          c.replies.push(reply.body as NodeReply);
          c.callback?.(reply.body as NodeReply);
          c.bump();
        },
      });
      this.replies.catch(() => {
        this.replies = null;
      });
    }
    return this.replies;
  }

  /**
   * Sends a command to the workers. Without `reply`, resolves once it was
   * sent, with `[]`. With `reply`, resolves with the replies, one
   * `{node: reply}` object per worker that answered, as Python's
   * `broadcast(..., reply=True)` returns them.
   */
  async broadcast(command: string, options: BroadcastOptions = {}): Promise<NodeReply[]> {
    const destination = options.destination ?? null;
    if (destination !== null && !Array.isArray(destination)) {
      throw new ImproperlyConfigured(`destination must be a list of node names, not ${typeof destination}`);
    }
    await this.app.ready();
    const timeoutS = options.timeout ?? 1;
    const ticket = options.reply ? randomUUID() : undefined;
    const limit = options.limit ?? (destination && destination.length ? destination.length : null);
    const { exchange, replyExchange } = mailboxNames(this.app.conf);
    const request: ControlRequest = {
      method: command,
      arguments: options.arguments ?? {},
      destination,
      pattern: options.pattern ?? null,
      matcher: options.matcher ?? null,
    };
    let collected: Promise<NodeReply[]> | null = null;
    if (ticket) {
      await this.ensureReplyQueue();
      request.ticket = ticket;
      request.reply_to = { exchange: replyExchange.name, routing_key: this.oid };
      collected = this.collect(ticket, limit, timeoutS, options.callback);
    }
    const message = buildRequest(request, this.app.clock.forward(), Date.now() + timeoutS * 1000);
    try {
      await this.app.broker.publish(message, { exchange: exchange.name, routingKey: '', declareExchange: exchange }, { confirm: false });
    } catch (err) {
      if (ticket) this.collectors.delete(ticket);
      throw err;
    }
    return collected ?? [];
  }

  /** Waits for replies to `ticket`: until `limit` came, or `timeoutS` passed since the last one. */
  private collect(ticket: string, limit: number | null, timeoutS: number, callback: ((reply: NodeReply) => void) | undefined): Promise<NodeReply[]> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout;
      const done = (): void => {
        clearTimeout(timer);
        this.collectors.delete(ticket);
        resolve(collector.replies);
      };
      const collector: Collector = {
        replies: [],
        limit,
        callback,
        bump: () => {
          if (limit !== null && collector.replies.length >= limit) return done();
          clearTimeout(timer);
          timer = setTimeout(done, timeoutS * 1000);
        },
      };
      timer = setTimeout(done, timeoutS * 1000);
      this.collectors.set(ticket, collector);
    });
  }

  /** An inspect client for these nodes (`app.control.inspect()` in Python). */
  inspect(options: TargetOptions = {}): Inspect {
    return new Inspect(this, options);
  }

  /** Pings workers: `[{ 'celery@host': { ok: 'pong' } }, ...]`. */
  ping(options: TargetOptions = {}): Promise<NodeReply[]> {
    return this.broadcast('ping', { ...options, reply: true });
  }

  private call(command: string, args: Record<string, unknown>, options: ControlCallOptions): Promise<NodeReply[]> {
    return this.broadcast(command, { ...options, arguments: args });
  }

  /** Revokes tasks by id: queued, held and reserved ones never run; with `terminate`, a running one is stopped. */
  revoke(taskId: string | string[], options: RevokeOptions = {}): Promise<NodeReply[]> {
    const { terminate = false, signal = 'SIGTERM', ...rest } = options;
    return this.call('revoke', { task_id: taskId, terminate, signal }, rest);
  }

  /** Stops running tasks (revoke with terminate). */
  terminate(taskId: string | string[], options: Omit<RevokeOptions, 'terminate'> = {}): Promise<NodeReply[]> {
    return this.revoke(taskId, { ...options, terminate: true });
  }

  /** Revokes tasks by stamp (`{ stampName: value | [values] }`), Celery 5.3+. */
  revokeByStampedHeaders(headers: Record<string, unknown>, options: RevokeOptions = {}): Promise<NodeReply[]> {
    const { terminate = false, signal = 'SIGTERM', ...rest } = options;
    return this.call('revoke_by_stamped_headers', { headers, terminate, signal }, rest);
  }

  /** Sets a task's rate limit on the workers (`'10/s'`, `'100/m'`, `'1000/h'`, a number per second; 0 = none). */
  rateLimit(taskName: string, rateLimit: string | number, options: ControlCallOptions = {}): Promise<NodeReply[]> {
    return this.call('rate_limit', { task_name: taskName, rate_limit: rateLimit }, options);
  }

  /** Sets a task's time limits (seconds; null = none) on the workers. */
  timeLimit(taskName: string, limits: { soft?: number | null; hard?: number | null }, options: ControlCallOptions = {}): Promise<NodeReply[]> {
    return this.call('time_limit', { task_name: taskName, hard: limits.hard ?? null, soft: limits.soft ?? null }, options);
  }

  /** Makes workers consume another queue (declared as `add_consumer` declares it). */
  addConsumer(queue: string, options: ControlCallOptions & { exchange?: string; exchangeType?: string; routingKey?: string } = {}): Promise<NodeReply[]> {
    const { exchange = null, exchangeType = 'direct', routingKey = null, ...rest } = options;
    return this.call('add_consumer', { queue, exchange, exchange_type: exchangeType, routing_key: routingKey }, rest);
  }

  /** Makes workers stop consuming a queue. */
  cancelConsumer(queue: string, options: ControlCallOptions = {}): Promise<NodeReply[]> {
    return this.call('cancel_consumer', { queue }, options);
  }

  /** Turns task events on (what Flower does every few seconds). */
  enableEvents(options: ControlCallOptions = {}): Promise<NodeReply[]> {
    return this.call('enable_events', {}, options);
  }

  disableEvents(options: ControlCallOptions = {}): Promise<NodeReply[]> {
    return this.call('disable_events', {}, options);
  }

  /** Adds `n` to the workers' concurrency. */
  poolGrow(n = 1, options: ControlCallOptions = {}): Promise<NodeReply[]> {
    return this.call('pool_grow', { n }, options);
  }

  /** Takes `n` from the workers' concurrency. */
  poolShrink(n = 1, options: ControlCallOptions = {}): Promise<NodeReply[]> {
    return this.call('pool_shrink', { n }, options);
  }

  autoscale(max: number, min: number, options: ControlCallOptions = {}): Promise<NodeReply[]> {
    return this.call('autoscale', { max, min }, options);
  }

  /** Asks workers for a heartbeat event now. */
  heartbeat(options: ControlCallOptions = {}): Promise<NodeReply[]> {
    return this.call('heartbeat', {}, options);
  }

  /** Warm shutdown of the workers (they do not reply). */
  shutdown(options: ControlCallOptions = {}): Promise<NodeReply[]> {
    return this.call('shutdown', {}, options);
  }

  /** Stops consuming replies (`app.close()` calls it). */
  async close(): Promise<void> {
    const consumer = await this.replies?.catch(() => null);
    this.replies = null;
    await consumer?.close();
  }
}

/**
 * `app.control.inspect()`: read-only commands. Each resolves with
 * `{node: reply}` for the nodes that answered, or null when none did
 * (as Python returns None).
 */
export class Inspect {
  constructor(
    private readonly control: Control,
    private readonly options: TargetOptions,
  ) {}

  private async request<T>(command: string, args: Record<string, unknown> = {}): Promise<NodeReply<T> | null> {
    const replies = await this.control.broadcast(command, { ...this.options, arguments: args, reply: true });
    if (replies.length === 0) return null;
    return flattenReplies(replies as NodeReply<T>[]);
  }

  ping(): Promise<NodeReply<{ ok: string }> | null> {
    return this.request('ping');
  }

  stats(): Promise<NodeReply<Record<string, unknown>> | null> {
    return this.request('stats');
  }

  /** Registered task names; with attribute names (`'rate_limit'`), `name [rate_limit=10/s]`. */
  registered(...taskinfoitems: string[]): Promise<NodeReply<string[]> | null> {
    return this.request('registered', { taskinfoitems });
  }

  /** Running tasks; `safe` gives args/kwargs as their repr strings. */
  active(options: { safe?: boolean } = {}): Promise<NodeReply<Record<string, unknown>[]> | null> {
    return this.request('active', { safe: options.safe ?? null });
  }

  /** Tasks waiting for a slot. */
  reserved(): Promise<NodeReply<Record<string, unknown>[]> | null> {
    return this.request('reserved');
  }

  /** ETA tasks held: `[{ eta, priority, request }]`. */
  scheduled(): Promise<NodeReply<Record<string, unknown>[]> | null> {
    return this.request('scheduled');
  }

  revoked(): Promise<NodeReply<string[]> | null> {
    return this.request('revoked');
  }

  activeQueues(): Promise<NodeReply<Record<string, unknown>[]> | null> {
    return this.request('active_queues');
  }

  /** `{ id: [state, info] }` for the ids a worker holds. */
  queryTask(...ids: string[]): Promise<NodeReply<Record<string, [string, Record<string, unknown>]>> | null> {
    return this.request('query_task', { ids });
  }

  clock(): Promise<NodeReply<{ clock: number }> | null> {
    return this.request('clock');
  }

  conf(withDefaults = false): Promise<NodeReply<Record<string, unknown>> | null> {
    return this.request('conf', { with_defaults: withDefaults });
  }

  report(): Promise<NodeReply<{ ok: string }> | null> {
    return this.request('report');
  }

  /** Mingle's greeting: shares revoked ids both ways. */
  hello(fromNode: string, revoked: string[] = []): Promise<NodeReply<{ revoked: string[]; clock: number } | null> | null> {
    return this.request('hello', { from_node: fromNode, revoked });
  }

  memsample(): Promise<NodeReply<string | null> | null> {
    return this.request('memsample');
  }

  memdump(samples = 10): Promise<NodeReply<string> | null> {
    return this.request('memdump', { samples });
  }

  objgraph(type = 'Request', n = 200, maxDepth = 10): Promise<NodeReply<unknown> | null> {
    return this.request('objgraph', { num: n, max_depth: maxDepth, type });
  }
}
