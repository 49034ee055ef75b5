/**
 * `ts-celery events --dump`: prints every event on the broker as it happens,
 * in `celery events --dump`'s format, until SIGINT/SIGTERM (exit 0). It sees
 * Python and TypeScript workers (and producers with task_send_sent_event).
 * Celery's curses monitor and `--camera` are not implemented (use Flower).
 */
import type { ReconnectInfo } from '../broker/amqp/amqp-broker.js';
import { EventReceiver } from '../events/receiver.js';
import { Dumper } from '../events/dumper.js';
import { clientApp, type CliIo } from './control-command.js';

export interface EventsArgs {
  app?: string | undefined;
  broker?: string | undefined;
}

/** Runs the dump until `stop` resolves (a signal, in the CLI). */
export async function runEventsDump(args: EventsArgs, stop: Promise<unknown>, io: CliIo): Promise<number> {
  const app = await clientApp(args);
  const dumper = new Dumper((line) => io.out(line));
  io.out('-> evdump: starting capture...');
  const broker = app.broker;
  broker.on('reconnect-scheduled', (info: ReconnectInfo) => {
    io.out(`-> Cannot connect to ${info.url}: ${info.error.message}.\n${info.failover ? 'Will retry using next failover.' : `Trying again in ${(info.delayMs / 1000).toFixed(2)} seconds...`}\n`);
  });
  broker.on('disconnected', () => io.out('-> Connection lost, attempting reconnect'));
  const receiver = new EventReceiver(app, { handlers: { '*': (event) => dumper.onEvent(event) } });
  try {
    await Promise.race([receiver.start(), stop]);
    // As Celery's capture(wakeup=True): ask every worker for a heartbeat, so they show up at once.
    await app.control.heartbeat().catch(() => undefined);
    await stop;
  } finally {
    await receiver.close().catch(() => undefined);
    await app.close().catch(() => undefined);
  }
  return 0;
}
