/**
 * One task sent again and again with the same arguments and options: beat sends each schedule
 * entry this way, up to thousands of times a second.
 *
 * Why: most of what `sendTask` does per call gives the same answer for every run of an entry:
 * checking the options, the JSON checks and encoding of args and kwargs, `argsrepr` and
 * `kwargsrepr`, the route and queue declaration, the header layout. Here that is done once, into a
 * template message, and each run only fills in what differs between runs: a new task id (also
 * `root_id` and the `correlation_id`), and the expiry (the `expires` header and the AMQP
 * `expiration`). The message each run puts on the wire is the one `sendTask` would send with the
 * same arguments at that moment (test/unit/app/prepared-send.test.ts compares them); it is
 * published the same way, with its confirm, `task_publish_retry` and `task-sent` event.
 *
 * Sends it cannot template go through `sendTask` each time: protocol 1 (the body carries the id),
 * compression, an `eta`/`countdown`/`taskId` option, `task_routes` with a function (a router may
 * answer differently from one call to the next), or a call from inside a running task (the message
 * then carries that task's `parent_id`/`root_id`).
 */
import { randomUUID } from 'node:crypto';
import type { WireMessage } from '../protocol/message.js';
import { formatIsoTime } from '../protocol/time.js';
import type { Celery } from './celery.js';
import { currentTaskContext } from './context.js';
import type { ResolvedRoute } from './routing.js';
import type { ApplyOptions, TaskOptions } from './task.js';
import { appTimezone } from './timezone.js';

interface Template {
  wire: WireMessage;
  route: ResolvedRoute;
  timeZone: string;
  /** `root_id` is the run's own id (not one set in the options). */
  ownRoot: boolean;
}

/** See the file comment. Made by `app.prepareSend()`. */
export class PreparedSend {
  /** Built at the first send (the app's config module may still be loading before). */
  private template: Template | null | undefined;

  constructor(
    private readonly app: Celery,
    private readonly name: string,
    private readonly taskOptions: Readonly<TaskOptions>,
    private readonly args: unknown[],
    private readonly kwargs: Record<string, unknown>,
    /** Without `expires`: each send passes its own. */
    private readonly options: ApplyOptions,
  ) {}

  /**
   * Sends one run; resolves once the broker confirmed it. `expiresSeconds`: the message expires
   * that many seconds from now (undefined: the task's own `expires`, if any).
   */
  async send(expiresSeconds?: number): Promise<void> {
    const { app } = this;
    if (this.template === undefined) {
      await app.ready();
      this.template = this.makeTemplate();
    }
    const template = this.template;
    if (template === null || currentTaskContext() !== undefined) {
      const options = expiresSeconds === undefined ? this.options : { ...this.options, expires: expiresSeconds };
      await app.sendTask(this.name, this.args, this.kwargs, options);
      return;
    }
    const now = Date.now();
    const id = randomUUID();
    const seconds = expiresSeconds ?? this.taskOptions.expires;
    const expires = seconds === undefined ? null : now + seconds * 1000;
    const t = template.wire;
    // A new headers object per run: the runs in flight each keep their own until amqplib encodes them.
    const headers: Record<string, unknown> = { ...t.headers, id, expires: expires === null ? null : formatIsoTime(expires, template.timeZone) };
    if (template.ownRoot) headers.root_id = id;
    const wire: WireMessage = { ...t, headers, correlationId: id };
    if (expires !== null) wire.expiration = String(Math.max(0, Math.round(expires - now)));
    await app.publishBuilt(wire, template.route, null, now);
  }

  /** The message with everything that is the same for every run, or null when runs cannot share one. */
  private makeTemplate(): Template | null {
    const { app, options } = this;
    const conf = app.conf;
    const routes = conf.task_routes;
    const routerFunction = typeof routes === 'function' || (Array.isArray(routes) && routes.some((r) => typeof r === 'function'));
    if (
      conf.task_protocol === 1 ||
      conf.task_compression ||
      routerFunction ||
      options.eta !== undefined ||
      options.countdown !== undefined ||
      options.taskId !== undefined ||
      options.expires !== undefined
    ) {
      return null;
    }
    // The same build as sendTask's, once; only the id and expiry fields are replaced per run.
    const built = app.buildMessage(this.name, this.taskOptions, this.args, this.kwargs, options, Date.now());
    const { expiration: _none, ...wire } = built.wire; // set per run
    return { wire, route: built.route, timeZone: appTimezone(conf), ownRoot: options.rootId === undefined };
  }
}
