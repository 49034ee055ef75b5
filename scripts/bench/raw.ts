/**
 * The raw amqplib side of the benchmark (the ceiling everything else is a
 * fraction of): a connection with TCP_NODELAY, the one captured Celery
 * message shape every raw publish reuses, and publishing with confirms.
 */
import amqp, { type ChannelModel, type ConfirmChannel, type Options } from 'amqplib';

/** Opens a connection as ts-celery does (Nagle off: see /work/shared/PERFORMANCE.md). */
export function connectRaw(url: string): Promise<ChannelModel> {
  return amqp.connect(url, { noDelay: true });
}

/**
 * One task message as ts-celery's `delay()` put it on the wire (properties
 * and headers), captured once per benchmark run. The body is rebuilt per
 * message with the run's arguments, in Celery's `[args, kwargs, embed]` form.
 */
export interface MessageShape {
  properties: Options.Publish;
  /** The captured body, for reference (the raw producer swaps in its own args). */
  body: string;
}

const EMBED = { callbacks: null, errbacks: null, chain: null, chord: null };

/** A Celery v2 body for `args`. */
export function celeryBody(args: unknown[]): Buffer {
  return Buffer.from(JSON.stringify([args, {}, EMBED]));
}

/** The shape with another task name in its `task` header (the raw worker dispatches on it). */
export function withTask(shape: MessageShape, task: string): MessageShape {
  return { ...shape, properties: { ...shape.properties, headers: { ...shape.properties.headers, task } } };
}

/** Reads the first message of `queue` (after ts-celery published it there) into a reusable shape. */
export async function captureShape(conn: ChannelModel, queue: string): Promise<MessageShape> {
  const ch = await conn.createChannel();
  try {
    for (let i = 0; i < 100; i++) {
      const m = await ch.get(queue, { noAck: true });
      if (m) {
        const p = m.properties;
        const properties: Options.Publish = {
          contentType: p.contentType as string,
          contentEncoding: p.contentEncoding as string,
          headers: p.headers as Record<string, unknown>,
          deliveryMode: 2,
          correlationId: p.correlationId as string,
          replyTo: p.replyTo as string,
        };
        if (p.priority !== undefined) properties.priority = p.priority as number;
        return { properties, body: m.content.toString() };
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`captureShape: no message arrived in ${queue}`);
  } finally {
    await ch.close().catch(() => undefined);
  }
}

/**
 * Publishes `n` persistent messages to `queue` (default exchange) on a
 * confirm channel, at most `window` unconfirmed at once; resolves when all
 * are confirmed. `body(i)` makes the i-th body.
 */
export async function publishConfirmed(ch: ConfirmChannel, queue: string, shape: MessageShape, n: number, window: number, body: (i: number) => Buffer): Promise<void> {
  let sent = 0;
  let confirmed = 0;
  let failed: Error | null = null;
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      if (failed) return reject(failed);
      if (confirmed === n) return resolve();
      while (sent < n && sent - confirmed < window) {
        const i = sent++;
        ch.publish('', queue, body(i), shape.properties, (err) => {
          if (err) failed = err instanceof Error ? err : new Error(String(err));
          confirmed++;
          pump();
        });
      }
    };
    pump();
  });
}

/** Publishes one message and waits for its confirm. */
export function publishOne(ch: ConfirmChannel, queue: string, shape: MessageShape, body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    ch.publish('', queue, body, shape.properties, (err) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()));
  });
}
