/**
 * Result meta: the JSON document every Celery result backend stores per task
 * (`{status, result, traceback, children, date_done, task_id, ...}`), and the
 * task states.
 */
import { formatIsoTime } from './time.js';
import { serializeException, formatTraceback } from './exceptions.js';

/** Celery's task states. PENDING is never stored: it is what an unknown id reads as. */
export const States = {
  PENDING: 'PENDING',
  RECEIVED: 'RECEIVED',
  STARTED: 'STARTED',
  SUCCESS: 'SUCCESS',
  FAILURE: 'FAILURE',
  RETRY: 'RETRY',
  REVOKED: 'REVOKED',
} as const;

export type State = (typeof States)[keyof typeof States] | (string & {});

/** States after which nothing changes any more. */
export const READY_STATES: ReadonlySet<string> = new Set([States.SUCCESS, States.FAILURE, States.REVOKED]);
/** States that `get()` turns into an exception. */
export const PROPAGATE_STATES: ReadonlySet<string> = new Set([States.FAILURE, States.REVOKED]);

/** The stored document, with Celery's field names. */
export interface ResultMeta {
  status: State;
  result: unknown;
  traceback: string | null;
  children: unknown[];
  date_done: string | null;
  task_id: string;
  group_id?: string;
  parent_id?: string;
  name?: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  worker?: string;
  retries?: number;
  queue?: string;
}

/** Optional context a worker adds to what it stores. */
export interface MetaContext {
  groupId?: string | null;
  parentId?: string | null;
  /** The app's time zone (IANA name) for `date_done`, as Celery 5.7's `app.now()`; default UTC. */
  timeZone?: string;
  /** Result tuples of what the task sent while it ran (Celery's `children`). */
  children?: unknown[] | null;
  /** With `result_extended`: the request's fields. */
  extended?: { name: string; args: unknown[]; kwargs: Record<string, unknown>; worker: string; retries: number; queue: string };
}

/**
 * Builds the meta a Python worker would store. `date_done` is set for ready
 * states only, as an offset-aware time in the app's timezone (Celery >= 5.5's
 * format; older Python readers parse it too).
 */
export function buildResultMeta(
  taskId: string,
  status: State,
  result: unknown,
  traceback: string | null = null,
  ctx: MetaContext = {},
  now: number = Date.now(),
): ResultMeta {
  // Key order follows Python's so stored documents look the same.
  return {
    status,
    // A JS function that returns nothing stores null, as Python's None: a missing key breaks Python readers.
    result: result === undefined ? null : result,
    traceback,
    children: ctx.children ?? [],
    date_done: READY_STATES.has(status) ? formatIsoTime(now, ctx.timeZone) : null,
    ...(ctx.groupId ? { group_id: ctx.groupId } : {}),
    ...(ctx.parentId ? { parent_id: ctx.parentId } : {}),
    ...ctx.extended,
    task_id: taskId,
  };
}

/** Meta for a task that threw: FAILURE (or RETRY/REVOKED) with the exception shape. */
export function buildExceptionMeta(
  taskId: string,
  status: State,
  thrown: unknown,
  ctx: MetaContext = {},
  now?: number,
): ResultMeta {
  return buildResultMeta(taskId, status, serializeException(thrown), formatTraceback(thrown), ctx, now);
}
