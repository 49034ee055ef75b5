import type { Celery } from '../../../src/index.js';
import { queueDeclaration } from '../../../src/app/routing.js';
import type { IncomingMessage } from '../../../src/protocol/message.js';

/** One message as published: its headers and its decoded body `[args, kwargs, embed]`. */
export interface Published {
  headers: Record<string, unknown>;
  body: unknown[];
}

/**
 * Captures what `app` (on the memory broker, no worker) publishes to `queue`
 * while `run` runs: consumes the queue, records each message and acks it.
 */
export async function published(app: Celery, run: () => Promise<unknown>, queue = 'Q'): Promise<Published[]> {
  const out: Published[] = [];
  await app.broker.consume(queueDeclaration(app.conf, queue), {
    prefetch: 0,
    onDelivery: (d) => {
      const m = d.message as IncomingMessage;
      out.push({ headers: m.headers, body: JSON.parse(m.body.toString('utf8')) as unknown[] });
      d.ack();
    },
  });
  await run();
  // The memory broker delivers on the next turn.
  await new Promise((r) => setImmediate(r));
  return out;
}
