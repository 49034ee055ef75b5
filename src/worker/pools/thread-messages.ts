/**
 * What the main thread and a pool thread say to each other (`-P threads`). Values cross by
 * structured clone; errors cross as {@link ErrorEnvelope}s, which carry exactly what the
 * main thread needs to store and log them as the thread would have.
 */
import type { MessagePort } from 'node:worker_threads';
import type { RetryOptions } from '../../app/task.js';
import type { PublishRoute } from '../../broker/types.js';
import * as errors from '../../errors.js';
import { formatTraceback, serializeException } from '../../protocol/exceptions.js';
import type { WireMessage } from '../../protocol/message.js';
import type { RunPacket } from './run-packet.js';

/** Given to each thread when it starts (`workerData`). */
export interface ThreadStartData {
  /** The module file that exports the app (`-A`, resolved). */
  appModule: string;
  /** The main app's name: the thread checks it loaded the same app. */
  appName: string;
  /** The main app's oid (rpc:// replies go to the queue named after it). */
  oid: string;
  brokerUrl: string;
  backendUrl: string;
  /** Whether the main thread's backend wants `beforePublish` (rpc://). */
  backendBeforePublish: boolean;
  logLevel: 'debug' | 'info' | 'warning' | 'error' | 'critical';
  /** Report the thread's memory after each task (worker_max_memory_per_child is set). */
  reportMemory: boolean;
  /** The pool's name for this thread in logs, e.g. `ThreadPoolWorker-1`. */
  threadName: string;
  /** The worker's node name (`self.request.hostname`). */
  hostname: string;
  /**
   * `self.request.properties` on demand: the main thread answers a `properties` request on
   * this port and then sets `propertiesFlag[0]`, while the thread waits on it (Atomics.wait).
   */
  propertiesPort: MessagePort;
  propertiesFlag: Int32Array;
}

/** The answer to a thread's request (publish, backend call, retry). */
export interface RpcReply {
  t: 'reply';
  id: number;
  ok: boolean;
  value?: unknown;
  error?: ErrorEnvelope;
}

/** A run (see run-packet.ts), or the answer to one of the thread's requests. */
export type ToThread = RunPacket | RpcReply;

/** `self.retry()` in a thread, for the main thread to publish; `exc` as an envelope. */
export interface RetryCall extends Omit<RetryOptions, 'exc' | 'eta'> {
  countdown?: number;
  eta?: number;
  exc?: ErrorEnvelope;
}

/**
 * The commonest answer, as a pair: run `seq` returned `value`, with no memory to report and no
 * children (any other end is an {@link Ended} object).
 */
export type DonePacket = [seq: number, value: unknown];

export type FromThread =
  | DonePacket
  | { t: 'ready'; tasks: string[]; threadId: number }
  | { t: 'load-failed'; error: string }
  | { t: 'log'; line: string }
  | Ended
  | { t: 'publish'; id: number; message: WireMessage; route: PublishRoute }
  | { t: 'backend'; id: number; method: 'get' | 'waitForReady' | 'forget' | 'beforePublish' | 'store'; args: unknown[] }
  /** `self.request.properties` of run `seq`, read by the task (answered on the properties port). */
  | { t: 'properties'; seq: number }
  /** `self.retry()` call number `number` of run `seq`. */
  | { t: 'retry'; id: number; seq: number; number: number; options: RetryCall };

/**
 * How a run in a thread ended. With it: the thread's memory (when worker_max_memory_per_child
 * asks) and the result tuples of what the task sent (`children`, stored with its state).
 */
export type Ended = { seq: number; memory?: number; children?: unknown[] } & (
  /** The function returned (or its promise resolved) this value. */
  | { t: 'done'; value: unknown }
  /** The function threw (or its promise rejected). */
  | { t: 'failed'; error: ErrorEnvelope }
  /** The run ended with the Retry of its `self.retry()` call number `retry`. */
  | { t: 'retried'; retry: number }
  /** `self.replace()`: celery.exceptions.Ignore, with its message. */
  | { t: 'ignored'; reason: string }
  /** `throw new Reject(reason, requeue)`: the main thread's ack policy settles the message. */
  | { t: 'rejected'; reason: unknown; requeue: boolean }
);

/** An error as data: how it is stored (Celery's shape), its traceback, message and stack. */
export interface ErrorEnvelope {
  /** The class name (`name`), for rebuilding ts-celery's own errors on the other side. */
  name: string;
  message: string;
  stack: string;
  excType: string;
  excArgs: unknown[];
  excModule: string | null;
  traceback: string | null;
  /** Matched the task's `autoretryFor` (only the thread can tell). */
  autoretry: boolean;
}

/** Packs a thrown value for the other thread. */
export function toEnvelope(thrown: unknown, autoretry = false): ErrorEnvelope {
  const exc = serializeException(thrown);
  const isError = thrown instanceof Error;
  return {
    name: isError ? thrown.name : exc.exc_type,
    message: isError ? thrown.message : String(exc.exc_message[0] ?? ''),
    stack: isError ? (thrown.stack ?? '') : '',
    excType: exc.exc_type,
    excArgs: exc.exc_message,
    excModule: exc.exc_module,
    traceback: formatTraceback(thrown),
    autoretry,
  };
}

/** What a task threw in a thread, as the main thread stores and logs it. */
export function taskErrorFrom(envelope: ErrorEnvelope, taskId: string): errors.ThreadTaskError {
  return new errors.ThreadTaskError({ ...envelope, taskId });
}

/** ts-celery errors a publish or backend call can reject with, rebuilt by name in the thread. */
const REBUILT: Record<string, new (message: string) => Error> = {
  TimeoutError: errors.TimeoutError,
  BackendError: errors.BackendError,
  NoResultBackend: errors.BackendError,
  BrokerError: errors.BrokerError,
  PublishError: errors.PublishError,
  EncodeError: errors.EncodeError,
  ProtocolError: errors.ProtocolError,
  ImproperlyConfigured: errors.ImproperlyConfigured,
};

/** An error from the main thread's broker or backend, as the same class in this thread. */
export function rebuildError(envelope: ErrorEnvelope): Error {
  const Cls = REBUILT[envelope.name] ?? errors.CeleryError;
  const err = new Cls(envelope.message);
  if (envelope.name === 'NoResultBackend') Object.setPrototypeOf(err, errors.NoResultBackend.prototype);
  err.name = envelope.name;
  err.stack = envelope.stack;
  return err;
}
