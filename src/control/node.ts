/**
 * The worker's end of remote control (kombu's `Node` and Celery's `Pidbox`):
 * consumes `<nodename>.celery.pidbox` without acks, keeps the Lamport clock,
 * runs the commands meant for this node, and replies `{nodename: reply}` to
 * the requester's reply queue when the request carries a ticket. A command
 * that throws is answered `{error: "<repr>"}`; a malformed request is logged
 * and ignored: neither ever affects the tasks.
 */
import type { Consumer } from '../broker/types.js';
import { getLogger } from '../support/log.js';
import type { Worker } from '../worker/worker.js';
import { COMMANDS, NO_REPLY, type CommandContext } from './commands.js';
import { buildReply, isForNode, nodeQueue, parseRequest, type ControlRequest } from './mailbox.js';

const log = getLogger('MainProcess');

/** Python's `repr()` of an error raised by a command: `KeyError('pingg')`, `ValueError('...')`. */
export function errorRepr(err: unknown): string {
  if (err instanceof Error) {
    const name = err.name && err.name !== 'Error' ? err.name : 'Exception';
    return `${name}(${pyString(err.message)})`;
  }
  return `Exception(${pyString(String(err))})`;
}

function pyString(s: string): string {
  return s.includes("'") && !s.includes('"') ? `"${s}"` : `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** A command name nobody registered: Python's `handlers[method]` raises KeyError. */
class KeyError extends Error {
  override name = 'KeyError';
}

export class ControlNode {
  private consumer: Consumer | null = null;

  constructor(
    private readonly worker: Worker,
    private readonly context: CommandContext,
  ) {}

  /** Declares the node's mailbox and starts consuming it. */
  async start(): Promise<void> {
    const decl = nodeQueue(this.worker.app.conf, this.worker.hostname);
    this.consumer = await this.worker.app.broker.consume(decl, {
      prefetch: 0,
      noAck: true,
      onDelivery: (delivery) => {
        delivery.ack(); // a no-op with no-ack; needed by a broker without that mode
        let request: ControlRequest;
        try {
          request = parseRequest(delivery.message);
        } catch (err) {
          log.error(`Control command error: cannot read a remote-control message: ${(err as Error).message}`);
          return;
        }
        const clock = this.worker.app.clock;
        clock.forward(); // Celery's Pidbox.on_message: clients rarely have a valid clock
        const sent = delivery.message.headers.clock;
        if (typeof sent === 'number') clock.adjust(sent);
        if (isForNode(request, this.worker.hostname)) void this.dispatch(request);
      },
    });
  }

  /** Runs one command and replies when asked to. */
  async dispatch(request: ControlRequest): Promise<unknown> {
    const { method } = request;
    log.debug(`pidbox received method ${method}(${JSON.stringify(request.arguments)}) [reply_to:${JSON.stringify(request.reply_to ?? null)} ticket:${request.ticket ?? null}]`);
    let reply: unknown;
    try {
      const command = Object.hasOwn(COMMANDS, method) ? COMMANDS[method] : undefined;
      if (!command) throw new KeyError(method);
      reply = await command.handler(this.context, request.arguments);
    } catch (err) {
      log.error(`pidbox command error: ${errorRepr(err)}`);
      reply = { error: errorRepr(err) };
    }
    if (reply === NO_REPLY) return undefined; // shutdown: the worker goes away without answering, as Python's
    if (request.ticket && request.reply_to) await this.reply(request, reply);
    return reply;
  }

  private async reply(request: ControlRequest, reply: unknown): Promise<void> {
    const { exchange, routing_key } = request.reply_to!;
    try {
      await this.worker.app.broker.publish(
        buildReply(this.worker.hostname, reply, request.ticket!, this.worker.app.clock.forward()),
        { exchange, routingKey: routing_key, declareExchange: exchange ? { name: exchange, type: 'direct', durable: false } : null },
        { confirm: false },
      );
    } catch (err) {
      log.warning(`Could not reply to remote-control ${request.method}: ${(err as Error).message}`);
    }
  }

  /** Stops taking commands (warm shutdown). */
  async stop(): Promise<void> {
    const consumer = this.consumer;
    this.consumer = null;
    await consumer?.close();
  }
}
