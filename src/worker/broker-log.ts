/**
 * The worker's log lines for broker connection events, in Celery's words
 * (`consumer: Connection to broker lost. Trying to re-establish the
 * connection...`), for every program that runs a worker: the CLI and the
 * celery-node shim.
 */
import type { Broker, ReconnectInfo } from '../broker/types.js';
import { getLogger } from '../support/log.js';

const log = getLogger('MainProcess');

/** Logs the broker's connection events (lost, retrying, resumed, blocked) for a worker. */
export function logBrokerEvents(broker: Broker): void {
  broker.on('reconnect-scheduled', (info: ReconnectInfo) => {
    const of = info.maxRetries === null ? '' : `/${info.maxRetries}`;
    // Celery's wording; with several broker URLs the next node is tried at once.
    const next = info.failover ? 'Will retry using next failover.' : `Trying again in ${(info.delayMs / 1000).toFixed(2)} seconds... (${info.attempt}${of})`;
    log.error(`consumer: Cannot connect to ${info.url}: ${info.error.message}\n${next}`);
  });
  broker.on('disconnected', (err: Error) => log.warning(`consumer: Connection to broker lost. Trying to re-establish the connection... (${err.message})`));
  broker.on('resumed', (url: string) => log.info(`consumer: Connected to ${url} again; consuming resumed.`));
  broker.on('connected', (url: string) => log.info(`Connected to ${url}`));
  broker.on('blocked', (reason: string) => log.warning(`RabbitMQ blocked this connection: ${reason}`));
}
