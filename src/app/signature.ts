/**
 * Signatures: a task call described as data (`add.s(2)`), as Celery's canvas
 * serializes it. Used for `link`/`linkError` callbacks and by the worker to
 * continue chains and callbacks that Python producers send.
 */
import type { Signature } from '../protocol/message.js';
import type { ApplyOptions } from './task.js';

export type { Signature } from '../protocol/message.js';

/** Builds a plain signature (`subtask_type` null), as Python's `task.s()` does. */
export function signature(
  task: string,
  args: unknown[] = [],
  kwargs: Record<string, unknown> = {},
  options: Record<string, unknown> = {},
  immutable = false,
): Signature {
  return { task, args, kwargs, options, subtask_type: null, immutable };
}

function asList(v: unknown): Signature[] | undefined {
  if (v === undefined || v === null) return undefined;
  return (Array.isArray(v) ? v : [v]) as Signature[];
}

/** The applyAsync options a stored signature's `options` stand for (Celery's names). */
export function applyOptionsOf(sig: Signature): ApplyOptions {
  const o = sig.options ?? {};
  const out: ApplyOptions = {};
  if (typeof o.task_id === 'string') out.taskId = o.task_id;
  if (typeof o.queue === 'string') out.queue = o.queue;
  else if (o.queue && typeof (o.queue as { name?: unknown }).name === 'string') out.queue = (o.queue as { name: string }).name;
  if (typeof o.routing_key === 'string') out.routingKey = o.routing_key;
  if (typeof o.exchange === 'string') out.exchange = o.exchange;
  if (typeof o.priority === 'number') out.priority = o.priority;
  if (typeof o.countdown === 'number') out.countdown = o.countdown;
  if (typeof o.expires === 'number' || typeof o.expires === 'string') out.expires = o.expires;
  if (typeof o.eta === 'string') out.eta = o.eta;
  if (typeof o.shadow === 'string') out.shadow = o.shadow;
  if (o.ignore_result === true) out.ignoreResult = true;
  const link = asList(o.link);
  const linkError = asList(o.link_error);
  if (link) out.link = link;
  if (linkError) out.linkError = linkError;
  return out;
}
