/**
 * Celery task messages, protocol v1 on the way out (`task_protocol = 1`).
 *
 * Protocol 1 puts everything in the JSON body and sends no headers; Celery
 * 5.x still writes it on request (`as_task_v1`) and every Celery worker since
 * 3.1, ts-celery's included, still reads it. It exists here because
 * celery-node documents `conf.TASK_PROTOCOL = 1` and projects that set it
 * keep working through `ts-celery/celery-node`. Captured from Celery 5.7:
 * test/fixtures/celery-5.7/task_v1.json.
 */
import { EncodeError } from '../errors.js';
import { encodeJson } from './json.js';
import { completeTaskMessage, JSON_CONTENT_TYPE, type TaskMessageInput, type WireMessage } from './message.js';
import { formatIsoTime } from './time.js';

/**
 * Builds the protocol v1 wire message for a task, as Python 5.7's
 * `as_task_v1` does: body keys in Python's order, no headers, the same
 * properties as v2. `utc` is the body's `utc` flag (Python's `enable_utc`);
 * the times written always carry their offset, so it only matters to readers
 * of naive times. v1 has no root/parent ids, shadow, origin or ignore_result:
 * they are not sent. A chain cannot be carried (Celery sends chains as links
 * under v1): that throws {@link EncodeError} before anything is published.
 */
export function buildTaskMessageV1(input: TaskMessageInput, now: number = Date.now(), timeZone = 'UTC', utc = true): WireMessage {
  const m = completeTaskMessage(input);
  if (m.embed.chain?.length) {
    throw new EncodeError(`task ${m.task}: protocol 1 cannot carry a chain; use task_protocol 2 (the default)`);
  }
  const what = `the arguments of task ${m.task}`;
  const time = (t: number | null): string | null => (t === null ? null : formatIsoTime(t, timeZone));
  const json = JSON.stringify;
  const body =
    `{"task": ${json(m.task)}, "id": ${json(m.id)}, ` +
    `"args": ${encodeJson(m.args, what, 'args')}, "kwargs": ${encodeJson(m.kwargs, what, 'kwargs')}, ` +
    `"group": ${json(m.group)}, "group_index": ${json(m.groupIndex)}, "retries": ${m.retries}, ` +
    `"eta": ${json(time(m.eta))}, "expires": ${json(time(m.expires))}, "utc": ${utc}, ` +
    `"callbacks": ${json(m.embed.callbacks)}, "errbacks": ${json(m.embed.errbacks)}, ` +
    `"timelimit": ${json(m.timeLimit)}, "taskset": ${json(m.group)}, "chord": ${json(m.embed.chord)}}`;
  const wire: WireMessage = {
    body: Buffer.from(body, 'utf8'),
    contentType: JSON_CONTENT_TYPE,
    contentEncoding: 'utf-8',
    headers: {},
    correlationId: m.id,
    deliveryMode: 2,
  };
  if (m.replyTo) wire.replyTo = m.replyTo;
  if (m.priority !== null) wire.priority = m.priority;
  if (m.expires !== null) wire.expiration = String(Math.max(0, Math.round(m.expires - now)));
  return wire;
}
