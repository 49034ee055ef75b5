/**
 * ts-celery: a Celery-compatible task framework for TypeScript.
 *
 * ```ts
 * import { Celery } from 'ts-celery';
 * export const app = new Celery('meiduo', { broker_url: 'amqp://guest:guest@127.0.0.1:5672//' });
 * export const add = app.task({ name: 'tasks.add' }, (x: number, y: number) => x + y);
 * const result = await add.delay(2, 3);
 * await result.get({ timeout: 10_000 }); // 5
 * ```
 */
export { Celery, Task, SETTINGS, currentTaskRequest } from './app/index.js';
export type {
  ApplyOptions,
  BoundTask,
  CeleryConfig,
  CelerySettings,
  ErrorClass,
  QueueDefinition,
  RetryOptions,
  Route,
  TaskOptions,
  TaskRequest,
  TaskRoutes,
} from './app/index.js';
export { AsyncResult, type GetOptions, type ResultNode } from './result/async-result.js';
export { GroupResult } from './result/group-result.js';
export {
  Signature,
  Chain,
  Group,
  Chord,
  MapSignature,
  ChunksSignature,
  chain,
  group,
  chord,
  maybeSignature,
  signature,
  type SignatureOptions,
  type StampingVisitor,
  type StampOptions,
  type Stamps,
} from './canvas/index.js';
export type { SignatureDict } from './protocol/message.js';
export { States, READY_STATES, type State, type ResultMeta } from './protocol/result-meta.js';
export {
  CeleryError,
  ImproperlyConfigured,
  ProtocolError,
  EncodeError,
  ContentDisallowed,
  BrokerError,
  PublishError,
  UnconfirmedPublishError,
  HeaderDecoderError,
  BackendError,
  NoResultBackend,
  TimeoutError,
  NotRegistered,
  TaskError,
  MaxRetriesExceededError,
  TaskRevokedError,
  Retry,
  InvalidRateLimit,
  Ignore,
  Reject,
  ChordError,
  ScheduleError,
  WorkerLostError,
} from './errors.js';
export { Control, Inspect, type BroadcastOptions, type ControlCallOptions, type NodeReply, type RevokeOptions, type TargetOptions } from './control/client.js';
export { EventReceiver, type EventReceiverOptions } from './events/receiver.js';
export type { CeleryEvent } from './events/event.js';
export type { TaskLifecycle, TaskLifecycleEvents, RevokedInfo } from './worker/lifecycle.js';
export type { Broker, Delivery, DeliveryInfo } from './broker/types.js';
export type { ResultBackend } from './backend/types.js';
export { getLogger, setLogLevel, type Logger, type LogLevel } from './support/log.js';
export { crontab, Crontab, IntervalSchedule, Beat, type BeatOptions, type BeatSchedule, type BeatScheduleEntry, type CrontabSpec, type Schedule } from './beat/index.js';
export { Worker, TimeLimitExceeded, SoftTimeLimitExceeded, type WorkerOptions, type WorkerStats } from './worker/index.js';
export type { PoolInfo, PoolName, WorkerPool } from './worker/pools/index.js';
