/**
 * The Redis connections of the broker: one command connection (publishes,
 * fetches, acks, restores; pipelined) and blocking ones for waiting on queue
 * lists. Both are ioredis clients with the transport's scripts defined.
 */
import { Redis, type RedisOptions } from 'ioredis';
import * as scripts from './scripts.js';

type Arg = string | number;

/** An ioredis client with the transport's Lua scripts (the first argument of each is the number of keys). */
export type ScriptedRedis = Redis & {
  tsFetch(numKeys: number, ...keysAndArgs: Arg[]): Promise<Array<number | string | null>>;
  tsAck(numKeys: number, ...keysAndArgs: Arg[]): Promise<number>;
  tsRequeue(numKeys: number, ...keysAndArgs: Arg[]): Promise<number>;
  tsRenew(numKeys: number, ...keysAndArgs: Arg[]): Promise<string[]>;
  tsRestore(numKeys: number, ...keysAndArgs: Arg[]): Promise<number>;
  tsReleaseLock(numKeys: number, ...keysAndArgs: Arg[]): Promise<number>;
};

/**
 * The command connection. Commands in flight when the connection drops are
 * failed, not sent again: a publish must report "maybe not stored" rather
 * than risk storing a message twice, and every other command is retried by
 * its owner (acks, requeues) or is safe to lose (a fetch's messages stay in
 * `unacked` and are restored after the visibility timeout).
 */
export function createCommandClient(options: RedisOptions): ScriptedRedis {
  const client = new Redis({
    ...options,
    enableAutoPipelining: true,
    autoResendUnfulfilledCommands: false,
  }) as ScriptedRedis;
  client.defineCommand('tsFetch', { lua: scripts.FETCH });
  client.defineCommand('tsAck', { lua: scripts.ACK });
  client.defineCommand('tsRequeue', { lua: scripts.REQUEUE });
  client.defineCommand('tsRenew', { lua: scripts.RENEW });
  client.defineCommand('tsRestore', { lua: scripts.RESTORE });
  client.defineCommand('tsReleaseLock', { lua: scripts.RELEASE_LOCK });
  return client;
}

/**
 * A connection for one blocking wait at a time. Its command (a peek that
 * leaves the list unchanged) is safe to send again after a reconnect, and it
 * waits through outages instead of failing.
 */
export function createBlockingClient(options: RedisOptions, blockSeconds: number): Redis {
  return new Redis({
    ...options,
    enableAutoPipelining: false,
    autoResendUnfulfilledCommands: true,
    maxRetriesPerRequest: null,
    // A half-open connection answers nothing: give up on it a while after the wait should have ended.
    socketTimeout: Math.round(blockSeconds * 1000) + 10_000,
    retryStrategy: (times) => Math.min(250 * 2 ** Math.min(times, 6), 5_000),
  });
}
