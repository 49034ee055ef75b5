/**
 * The Celery app: settings, the task registry, and the producer side
 * (`sendTask`, `delay`, `applyAsync`). Brokers and backends are created
 * lazily from the settings, so defining tasks never opens a connection.
 */
import { randomUUID } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { createBackend } from '../backend/index.js';
import type { ResultBackend } from '../backend/types.js';
import { createBroker } from '../broker/index.js';
import type { Broker } from '../broker/types.js';
import { Control } from '../control/client.js';
import { EventDispatcher } from '../events/dispatcher.js';
import { eventExchange } from '../events/event.js';
import { ImproperlyConfigured } from '../errors.js';
import { registerBuiltinTasks } from '../canvas/builtins.js';
import { signature as makeSignature, type Signature } from '../canvas/index.js';
import type { SignatureLike, SignatureOptions } from '../canvas/options.js';
import { buildTaskMessage, NO_EXTRA_HEADERS, NO_TIME_LIMIT, type Embed, type SignatureDict, type WireMessage } from '../protocol/message.js';
import { buildTaskMessageV1 } from '../protocol/message-v1.js';
import { parseIsoTime } from '../protocol/time.js';
import { AsyncResult } from '../result/async-result.js';
import { LamportClock } from '../support/clock.js';
import { parseRate } from '../support/rate.js';
import { newTaskId, producerOrigin } from '../support/ids.js';
import {
  applyEnvironment,
  applySettings,
  defaultSettings,
  unsupportedSettings,
  type CelerySettings,
} from './config.js';
import { currentTaskContext } from './context.js';
import { callerDirectory, importFile, loadConfigModule, resolveModuleFile } from './modules.js';
import { nativeDelayedRoute } from './delayed-delivery.js';
import { PreparedSend } from './prepared-send.js';
import { resolveRoute, type ResolvedRoute } from './routing.js';
import { appTimezone } from './timezone.js';
import { paramsFromOption } from '../worker/arguments.js';
import { checkApplyOptions, checkTaskOptions, Task, type ApplyOptions, type BoundTask, type TaskFunction, type TaskHost, type TaskOptions } from './task.js';

/**
 * Settings as users write them: any subset, Celery's names. `broker_url` may
 * also be a list of URLs (kombu's failover), stored as `'a;b'`.
 */
export type CeleryConfig = Partial<Omit<CelerySettings, 'broker_url'>> & { broker_url?: string | string[] };

interface DiscoverySpec {
  packages: string[];
  relatedName: string;
  root: string;
}

function toEpochMs(value: Date | string | number, what: string): number {
  const ms = value instanceof Date ? value.getTime() : typeof value === 'string' ? parseIsoTime(value) : value;
  if (!Number.isFinite(ms)) throw new ImproperlyConfigured(`Invalid ${what}: ${String(value)}`);
  return ms;
}

/**
 * Inside a worker thread of `-P threads`, every app sends and reads through the main
 * thread's broker and backend (the main thread keeps all connections), and uses the main
 * app's `oid`, so rpc:// replies reach the queue the main thread consumes.
 */
export interface ThreadConnections {
  broker: Broker;
  backend: ResultBackend;
  oid: string;
}

let threadConnections: ThreadConnections | null = null;

/** @internal Called once by a worker thread (pools/thread-main.ts) before it loads the app. */
export function useThreadConnections(connections: ThreadConnections): void {
  threadConnections = connections;
}

export class Celery implements TaskHost {
  /** The app's name (Python's `main`), shown in the worker banner. */
  readonly main: string;
  /** The effective settings. Change them through `configFromObject`. */
  readonly conf: CelerySettings = defaultSettings();
  /** Registered tasks by name. */
  readonly tasks = new Map<string, Task<never, unknown>>();
  /** Sent as `reply_to` on every task, as Python's `app.thread_oid` (used by rpc://). */
  readonly oid: string = threadConnections?.oid ?? randomUUID();
  /** The app's Lamport clock (Celery's `app.clock`): stamps events and remote-control messages. */
  readonly clock = new LamportClock();

  private readonly loading: Promise<void>[] = [];
  private readonly discovery: DiscoverySpec[] = [];
  private isReady = true;
  private brokerInstance: Broker | null = null;
  private backendInstance: ResultBackend | null = null;
  private controlInstance: Control | null = null;
  /** `task-sent` events (`task_send_sent_event`), created on first use. */
  private sentEvents: EventDispatcher | null = null;
  private readonly origin = producerOrigin();
  private warnedUnsupported = false;

  /**
   * `new Celery('meiduo')`, optionally with settings (an object, or a module
   * path as for {@link configFromObject}).
   */
  constructor(main = 'default', config?: CeleryConfig | string) {
    this.main = main;
    applyEnvironment(this.conf);
    if (config !== undefined) this.configFromObject(config);
    registerBuiltinTasks(this);
  }

  /**
   * Loads settings from an object, or from a module (path relative to the
   * current directory, e.g. `'config/celery'`) whose default export or named
   * exports are the settings. Unknown names are an error. Module loading is
   * asynchronous; `ready()` (and every send) waits for it.
   */
  configFromObject(source: CeleryConfig | Record<string, unknown> | string): this {
    this.assertNotConnected('configFromObject');
    if (typeof source === 'string') {
      this.track(loadConfigModule(source).then((settings) => this.applyConfig(settings)));
    } else {
      this.applyConfig(source as Record<string, unknown>);
    }
    return this;
  }

  private applyConfig(settings: Record<string, unknown>): void {
    applySettings(this.conf, settings);
    applyEnvironment(this.conf); // the environment always wins, as in Celery
  }

  private assertNotConnected(what: string): void {
    if (this.brokerInstance || this.backendInstance) {
      throw new ImproperlyConfigured(`${what}() was called after the app connected; configure the app first`);
    }
  }

  private track(p: Promise<void>): void {
    this.isReady = false;
    const tracked = p.finally(() => {
      this.loading.splice(this.loading.indexOf(tracked), 1);
      if (this.loading.length === 0) this.isReady = true;
    });
    tracked.catch(() => undefined); // surfaced by ready()
    this.loading.push(tracked);
  }

  /** Resolves once pending config modules are loaded; rejects with their error. */
  async ready(): Promise<void> {
    while (this.loading.length > 0) await Promise.all(this.loading);
    if (!this.warnedUnsupported) {
      this.warnedUnsupported = true;
      for (const warning of unsupportedSettings(this.conf)) {
        process.emitWarning(warning, 'TsCeleryWarning');
      }
    }
  }

  /**
   * Registers task packages to load when a worker starts (`loadTasks()`):
   * `['sms']` loads `sms/tasks.ts` next to the file that calls this, as
   * Python's `autodiscover_tasks(['celery_tasks.sms'])` imports
   * `celery_tasks.sms.tasks`.
   */
  autodiscoverTasks(packages: string[], options: { relatedName?: string; root?: string } = {}): this {
    this.discovery.push({
      packages,
      relatedName: options.relatedName ?? 'tasks',
      root: options.root ?? callerDirectory(),
    });
    return this;
  }

  /**
   * Imports autodiscovered task packages and `imports`/`include` modules.
   * Returns the files loaded. A package without a tasks module is an error
   * naming where it looked.
   */
  async loadTasks(): Promise<string[]> {
    await this.ready();
    const files: string[] = [];
    for (const { packages, relatedName, root } of this.discovery) {
      for (const pkg of packages) {
        const base = pkg.replace(/\./g, '/');
        const file = resolveModuleFile(`${base}/${relatedName}`, root);
        if (!file) {
          throw new ImproperlyConfigured(
            `autodiscoverTasks: no ${relatedName} module in package ${JSON.stringify(pkg)} ` +
              `(looked for ${base}/${relatedName}.ts under ${root})`,
          );
        }
        files.push(file);
      }
    }
    for (const spec of [...this.conf.imports, ...this.conf.include]) {
      const file = resolveModuleFile(spec, process.cwd());
      if (!file) throw new ImproperlyConfigured(`Cannot find module ${JSON.stringify(spec)} listed in imports/include`);
      files.push(file);
    }
    for (const file of files) await importFile(file);
    return files;
  }

  /**
   * Defines a task. With `bind: true` the function receives the task context
   * (`self`: request, retry, name) first; `delay()` takes the remaining arguments.
   */
  task<A extends unknown[], R>(options: TaskOptions & { bind: true }, fn: (self: BoundTask, ...args: A) => R): Task<A, Awaited<R>>;
  task<A extends unknown[], R>(options: (TaskOptions & { bind?: false }) | string, fn: (...args: A) => R): Task<A, Awaited<R>>;
  task<A extends unknown[], R>(fn: (...args: A) => R): Task<A, Awaited<R>>;
  task(a: TaskOptions | string | TaskFunction, b?: TaskFunction): Task<never, unknown> {
    const fn = (typeof a === 'function' ? a : b) as TaskFunction | undefined;
    if (typeof fn !== 'function') throw new ImproperlyConfigured('app.task() needs a function');
    const options: TaskOptions = typeof a === 'string' ? { name: a } : typeof a === 'function' ? {} : { ...a };
    const name = options.name ?? fn.name;
    if (!name) {
      throw new ImproperlyConfigured('app.task(): the function has no name; pass one: app.task({ name: "..." }, fn)');
    }
    checkTaskOptions(name, options);
    if (options.params) paramsFromOption(options.params); // a bad list fails here, not at the first message
    if (options.rateLimit !== undefined) parseRate(options.rateLimit); // a bad rate fails here, not on the worker
    const existing = this.tasks.get(name);
    if (existing && existing.fn !== fn) {
      throw new ImproperlyConfigured(`A different task is already registered as ${JSON.stringify(name)}`);
    }
    const task = new Task<never, unknown>(this, name, Object.freeze({ ...options, name }), fn);
    this.tasks.set(name, task);
    return task;
  }

  /** The broker named by `broker_url` (created on first use). */
  get broker(): Broker {
    if (!this.brokerInstance) {
      if (!this.isReady) throw new ImproperlyConfigured('The app is still loading its config module: await app.ready() first');
      this.brokerInstance = threadConnections?.broker ?? createBroker(this.conf, `ts-celery ${this.main} ${this.origin}`);
    }
    return this.brokerInstance;
  }

  /** The result backend named by `result_backend` (created on first use). */
  get backend(): ResultBackend {
    if (!this.backendInstance) {
      if (!this.isReady) throw new ImproperlyConfigured('The app is still loading its config module: await app.ready() first');
      this.backendInstance = threadConnections?.backend ?? createBackend(this.conf, { broker: () => this.broker, oid: this.oid });
    }
    return this.backendInstance;
  }

  /**
   * Remote control of the workers, TypeScript and Python (Celery's
   * `app.control`): `inspect()`, `revoke()`, `broadcast()`, `ping()`...
   */
  get control(): Control {
    return (this.controlInstance ??= new Control(this));
  }

  /** A result handle for any task id. */
  asyncResult<R = unknown>(id: string): AsyncResult<R> {
    return new AsyncResult<R>(id, this.backend, this);
  }

  /**
   * Sends a task by name, e.g. one defined in Python: `app.sendTask('tasks.add', [2, 3])`.
   * Resolves once the broker confirmed the message.
   */
  sendTask<R = unknown>(
    name: string,
    args: unknown[] = [],
    kwargs: Record<string, unknown> = {},
    options: ApplyOptions = {},
  ): Promise<AsyncResult<R>> {
    const known = this.tasks.get(name) as Task<never, R> | undefined;
    return this.send<R>(name, known?.options ?? {}, args, kwargs, options);
  }

  /**
   * A signature of a task by name, bound to this app, e.g. a task defined
   * only in Python: `app.signature('tasks.add', [1, 2], {}, { queue: 'py' })`.
   */
  signature<R = unknown>(name: string, args: unknown[] = [], kwargs: Record<string, unknown> = {}, options: SignatureOptions = {}): Signature<R, any, AsyncResult<R>> {
    return makeSignature<R>(name, args, kwargs, options, this);
  }

  /** @internal used by `Task.delay`/`applyAsync`. */
  sendTaskFrom<R>(task: Task<never, R>, args: unknown[], kwargs: Record<string, unknown>, options: ApplyOptions): Promise<AsyncResult<R>> {
    return this.send<R>(task.name, task.options, args, kwargs, options);
  }

  private send<R>(
    name: string,
    taskOptions: Readonly<TaskOptions>,
    args: unknown[],
    kwargs: Record<string, unknown>,
    options: ApplyOptions,
  ): Promise<AsyncResult<R>> {
    // Not an async function: the common call adds one promise (the confirm's, then the result)
    // instead of a chain of async frames kept alive until RabbitMQ confirms. Errors still reject.
    try {
      checkApplyOptions(options);
      if (!this.isReady) return this.ready().then(() => this.sendReady<R>(name, taskOptions, args, kwargs, options));
      return this.sendReady<R>(name, taskOptions, args, kwargs, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** {@link send} once the config is loaded (may throw: send turns that into a rejection). */
  private sendReady<R>(
    name: string,
    taskOptions: Readonly<TaskOptions>,
    args: unknown[],
    kwargs: Record<string, unknown>,
    options: ApplyOptions,
  ): Promise<AsyncResult<R>> {
    const now = Date.now();
    const context = currentTaskContext();
    const built = this.buildMessage(name, taskOptions, args, kwargs, options, now, context?.request);
    const backend = this.backend;
    const id = built.id;
    return this.publishBuilt(built.wire, built.route, built.eta, now).then(() => {
      const result = new AsyncResult<R>(id, backend, this);
      // As Celery's add_trail: the sending task stores it among its children.
      if (context?.addChild && options.addToParent !== false) context.addChild(result);
      return result;
    });
  }

  /** @internal The wire message of one send and where it goes (send() and prepared sends). */
  buildMessage(
    name: string,
    taskOptions: Readonly<TaskOptions>,
    args: unknown[],
    kwargs: Record<string, unknown>,
    options: ApplyOptions,
    now: number,
    parent?: { id: string; rootId: string | null } | undefined,
  ): { id: string; wire: WireMessage; route: ResolvedRoute; eta: number | null } {
    const id = options.taskId ?? newTaskId();
    const eta =
      options.eta !== undefined ? toEpochMs(options.eta, 'eta') : options.countdown !== undefined ? now + options.countdown * 1000 : null;
    const expiresOpt = options.expires ?? taskOptions.expires;
    const expires =
      expiresOpt === undefined ? null : typeof expiresOpt === 'number' ? now + expiresOpt * 1000 : toEpochMs(expiresOpt, 'expires');
    const route = resolveRoute(this.conf, options.routeName ?? name, args, kwargs, options, taskOptions);
    const embed: Embed | undefined =
      options.link || options.linkError || options.chain || options.chord
        ? {
            callbacks: options.link ? asDicts(options.link) : null,
            errbacks: options.linkError ? asDicts(options.linkError) : null,
            chain: options.chain ? asDicts(options.chain) : null,
            chord: options.chord ? (options.chord as SignatureDict) : null,
          }
        : undefined;
    const nesting = options.replacedTaskNesting;
    const headers = nesting ? { ...options.headers, replaced_task_nesting: nesting } : (options.headers ?? NO_EXTRA_HEADERS);
    const build = this.conf.task_protocol === 1 ? buildTaskMessageV1 : buildTaskMessage;
    let wire: WireMessage = build(
      {
        id,
        task: name,
        args,
        kwargs,
        eta,
        expires,
        rootId: options.rootId ?? parent?.rootId ?? id,
        parentId: options.parentId ?? parent?.id ?? null,
        shadow: options.shadow ?? null,
        timeLimit:
          options.timeLimit === undefined && options.softTimeLimit === undefined ? NO_TIME_LIMIT : [options.timeLimit ?? null, options.softTimeLimit ?? null],
        ignoreResult: options.ignoreResult ?? taskOptions.ignoreResult ?? this.conf.task_ignore_result,
        origin: this.origin,
        replyTo: options.replyTo ?? this.oid,
        priority: route.priority,
        extraHeaders: headers,
        group: options.groupId ?? null,
        groupIndex: options.groupIndex ?? null,
        embed, // undefined: the shared empty embed
      },
      now,
      appTimezone(this.conf),
      this.conf.enable_utc,
    );
    if (this.conf.task_compression) wire = compress(wire);
    if (this.conf.task_default_delivery_mode === 1 || this.conf.task_default_delivery_mode === 'transient') {
      wire.deliveryMode = 1;
    }
    return { id, wire, route, eta };
  }

  /** @internal Publishes a built message (with its confirm) and sends `task-sent` when enabled. */
  publishBuilt(wire: WireMessage, route: ResolvedRoute, eta: number | null, now: number): Promise<void> {
    // Not an async function (see send()); a synchronous error becomes the rejection.
    try {
      const backend = this.backend;
      if (backend.beforePublish) return backend.beforePublish().then(() => this.publishRouted(wire, route, eta, now));
      return this.publishRouted(wire, route, eta, now);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private publishRouted(wire: WireMessage, route: ResolvedRoute, eta: number | null, now: number): Promise<void> {
    const broker = this.broker;
    // Countdown/eta tasks of an app with quorum queues wait in the broker, not in a worker (delayed-delivery.ts).
    const publishRoute = nativeDelayedRoute(this.conf, route.queue, eta, now, typeof broker.declareTopology === 'function') ??
      { exchange: route.exchange, routingKey: route.routingKey, declare: route.queue };
    const published = broker.publish(wire, publishRoute);
    if (!this.conf.task_send_sent_event) return published;
    return published.then(() => this.sendSentEvent(wire, route.queue?.name ?? null, publishRoute.exchange, publishRoute.routingKey));
  }

  /**
   * @internal The same task sent again and again (beat: one per schedule entry): see
   * {@link PreparedSend}. `options` are checked here, once.
   */
  prepareSend(name: string, args: unknown[], kwargs: Record<string, unknown>, options: ApplyOptions): PreparedSend {
    checkApplyOptions(options);
    const known = this.tasks.get(name);
    return new PreparedSend(this, name, known?.options ?? {}, args, kwargs, options);
  }

  /** Celery's `task-sent` event, sent by the producer once the message is published. */
  private sendSentEvent(wire: WireMessage, queue: string | null, exchange: string, routingKey: string): void {
    const h = wire.headers;
    this.sentEvents ??= new EventDispatcher({ hostname: this.origin, broker: () => this.broker, clock: this.clock, exchange: () => eventExchange(this.conf, this.broker.driverType) });
    this.sentEvents.send('task-sent', {
      uuid: h.id, root_id: h.root_id, parent_id: h.parent_id, name: h.task, args: h.argsrepr, kwargs: h.kwargsrepr,
      retries: h.retries, eta: h.eta, expires: h.expires, queue, exchange, routing_key: routingKey,
    });
  }

  /** Closes the broker connection and the backend (waits for pending confirms). */
  async close(): Promise<void> {
    await this.sentEvents?.close();
    this.sentEvents = null;
    const control = this.controlInstance;
    this.controlInstance = null;
    await control?.close();
    // The backend first: rpc:// consumes on the broker's connection.
    const backend = this.backendInstance;
    this.backendInstance = null;
    await backend?.close();
    const broker = this.brokerInstance;
    this.brokerInstance = null;
    await broker?.close();
  }
}

/** Signatures (instances or dicts) as the list a message embeds; instances serialize themselves. */
function asDicts(v: SignatureLike | SignatureLike[]): SignatureDict[] {
  return (Array.isArray(v) ? v : [v]) as SignatureDict[];
}

/** zlib-compresses the body, as Python's `compression='zlib'` does. */
function compress(wire: WireMessage): WireMessage {
  return { ...wire, body: deflateSync(wire.body), headers: { ...wire.headers, compression: 'application/x-gzip' } };
}
