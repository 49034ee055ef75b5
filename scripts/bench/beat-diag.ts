/**
 * What a beat process (beat-runner.ts) or its ceiling (beat-raw.ts) did during the measured
 * window, beyond lag: to tell *why* one confirms later than the other at the same rate.
 *
 * - socket writes to RabbitMQ (and Redis): how many `write`/`writev` calls reached the socket
 *   (each is at least one syscall and, with TCP_NODELAY, usually one TCP segment) and how many
 *   chunks (AMQP frames amqplib's mux wrote) they carried, per run;
 * - the event loop: its delay (how long a ready callback, e.g. a confirm that arrived, waited
 *   for the loop: p50 / p99 / max) and its utilization (share of the window spent running JS);
 * - garbage collection: pause time in the window.
 *
 * Cheap enough to stay on (a counter per socket write, a timestamp check per call).
 */
import net from 'node:net';
import { monitorEventLoopDelay, performance, PerformanceObserver, type EventLoopUtilization } from 'node:perf_hooks';

export interface Diag {
  amqpWrites: number;
  amqpChunks: number;
  amqpBytesOut: number;
  amqpBytesIn: number;
  redisWrites: number;
  loopDelayMs: { p50: number; p99: number; max: number };
  loopUtilization: number;
  gcMs: number;
}

type WriteFn = (this: net.Socket, ...args: unknown[]) => unknown;

/** Starts counting at `from` (epoch ms) and stops at `to`; `report()` after `to`. */
export function startDiag(from: number, to: number): { report(): Diag } {
  /** Each AMQP socket's byte counters at its first write in the window. */
  const bytes = new Map<net.Socket, { out: number; in: number }>();
  const counts = { amqpWrites: 0, amqpChunks: 0, redisWrites: 0 };
  const inWindow = (): boolean => {
    const t = Date.now();
    return t >= from && t < to;
  };
  const proto = net.Socket.prototype as unknown as Record<'_write' | '_writev', WriteFn>;
  const write = proto._write;
  const writev = proto._writev;
  const count = (socket: net.Socket, chunks: number): void => {
    if (!inWindow()) return;
    if (socket.remotePort === 5672) {
      if (!bytes.has(socket)) bytes.set(socket, { out: socket.bytesWritten, in: socket.bytesRead });
      counts.amqpWrites++;
      counts.amqpChunks += chunks;
    } else if (socket.remotePort === 6379) counts.redisWrites++;
  };
  proto._write = function (this: net.Socket, ...args: unknown[]) {
    count(this, 1);
    return write.apply(this, args);
  };
  proto._writev = function (this: net.Socket, ...args: unknown[]) {
    count(this, (args[0] as unknown[]).length);
    return writev.apply(this, args);
  };

  const histogram = monitorEventLoopDelay({ resolution: 1 });
  let elu: EventLoopUtilization | null = null;
  let gcMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const at = performance.timeOrigin + e.startTime;
      if (at >= from && at < to) gcMs += e.duration;
    }
  });
  gc.observe({ entryTypes: ['gc'] });
  let bytesOut = 0;
  let bytesIn = 0;
  setTimeout(() => {
    histogram.enable();
    elu = performance.eventLoopUtilization();
  }, Math.max(0, from - Date.now()));
  setTimeout(() => {
    histogram.disable();
    elu = performance.eventLoopUtilization(elu ?? undefined);
    for (const [s, b] of bytes) {
      bytesOut += s.bytesWritten - b.out;
      bytesIn += s.bytesRead - b.in;
    }
    gc.disconnect();
    proto._write = write;
    proto._writev = writev;
  }, Math.max(0, to - Date.now()));
  const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
  return {
    report: () => ({
      ...counts,
      amqpBytesOut: bytesOut,
      amqpBytesIn: bytesIn,
      loopDelayMs: { p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max) },
      loopUtilization: Math.round((elu?.utilization ?? 0) * 1000) / 1000,
      gcMs: Math.round(gcMs),
    }),
  };
}
