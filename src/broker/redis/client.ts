/**
 * The Redis connections of the broker: one command connection (publishes,
 * fetches, acks, restores, bindings; pipelined) and blocking ones for waiting
 * on queue lists, ioredis clients with the transport's scripts defined. (The
 * pub/sub connection of fanout exchanges is fanout.ts's.)
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
  tsRefreshBinding(numKeys: number, ...keysAndArgs: Arg[]): Promise<number>;
  tsSweepBindings(numKeys: number, ...keysAndArgs: Arg[]): Promise<number>;
};

/**
 * The command connection. Commands in flight when the connection drops are
 * sent again once it is back (with `autoResendUnfulfilledCommands` off,
 * ioredis drops them without ever settling their promises), or rejected after
 * `maxRetriesPerRequest` failed reconnects. Every command here is safe to
 * repeat: acks, requeues, renewals and restores check what they change, and a
 * repeated fetch only pops more (what the lost reply carried stays in
 * `unacked` and is restored after the visibility timeout). A repeated publish
 * may store a message twice, which at-least-once delivery allows.
 *
 * No auto-pipelining: ioredis runs one auto-pipeline at a time, so a fetch
 * script would hold up every publish and ack behind it, and a pipeline cut
 * by a Redis restart was seen never to settle. Commands are written as they
 * come (still pipelined on the socket); acks and fetches batch themselves.
 */
export function createCommandClient(options: RedisOptions): ScriptedRedis {
  const client = new Redis({
    ...options,
    enableAutoPipelining: false,
    autoResendUnfulfilledCommands: true,
  }) as ScriptedRedis;
  client.defineCommand('tsFetch', { lua: scripts.FETCH });
  client.defineCommand('tsAck', { lua: scripts.ACK });
  client.defineCommand('tsRequeue', { lua: scripts.REQUEUE });
  client.defineCommand('tsRenew', { lua: scripts.RENEW });
  client.defineCommand('tsRestore', { lua: scripts.RESTORE });
  client.defineCommand('tsReleaseLock', { lua: scripts.RELEASE_LOCK });
  client.defineCommand('tsRefreshBinding', { lua: scripts.REFRESH_BINDING });
  client.defineCommand('tsSweepBindings', { lua: scripts.SWEEP_BINDINGS });
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
