/**
 * What a worker does for the canvas after a task ran, as Celery's tracer and
 * result backend do it (celery/app/trace.py, celery/backends/base.py):
 *
 * - on success: the `link` callbacks and the next chain step are sent with
 *   the result prepended to their args (before the state is stored, so the
 *   stored `children` list them); then, for a chord header member, the
 *   backend counts it and the last one sends the body;
 * - on failure: the chord counts it too (the body fails with ChordError once
 *   the header is complete), the rest of the chain is marked FAILURE so no
 *   `get()` waits forever, and the errbacks are sent with the failed task's id.
 *
 * These functions run inside the task's context, so what they send gets the
 * task as parent and is recorded among its children.
 */
import { randomUUID } from 'node:crypto';
import type { Celery } from '../app/celery.js';
import { currentTaskContext } from '../app/context.js';
import type { ChordPart, StoreContext } from '../backend/types.js';
import { Chord } from '../canvas/chord.js';
import { Group } from '../canvas/group.js';
import { maybeSignature, Signature } from '../canvas/signature.js';
import { ChordError } from '../errors.js';
import type { Task } from '../app/task.js';
import { formatTraceback, serializeException } from '../protocol/exceptions.js';
import { bindArguments, paramsOfTask } from './arguments.js';
import type { SignatureDict, TaskMessage } from '../protocol/message.js';
import { buildExceptionMeta, PROPAGATE_STATES, States, type MetaContext } from '../protocol/result-meta.js';
import { getLogger } from '../support/log.js';

const log = getLogger('MainProcess');

/** Where failure states go: the worker's result writer (retries while the backend is down). */
export interface StateSink {
  store(meta: ReturnType<typeof buildExceptionMeta>, context?: StoreContext): Promise<void>;
}

/** Who the canvas work is for, for log lines. */
function who(message: { task: string; id: string }): string {
  return `${message.task}[${message.id}]`;
}

/** Runs `fn`, logging (not throwing) a failure: the task's own outcome is already decided. */
async function logged(what: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    log.error(`${what}: ${(err as Error).message}`);
  }
}

/**
 * After SUCCESS, before the state is stored: sends the callbacks and the next
 * chain step with the return value (Celery's `_dispatch_callbacks_and_chain`).
 */
export async function sendCallbacks(app: Celery, message: TaskMessage, value: unknown): Promise<void> {
  const { callbacks, chain } = message.embed;
  if (!callbacks?.length && !chain?.length) return;
  const parentId = message.id;
  const rootId = message.rootId ?? message.id;
  const priority = app.conf.task_inherit_parent_priority ? message.priority : null;
  const base = { parent_id: parentId, root_id: rootId, priority };
  const jobs: Array<Promise<void>> = [];
  if (callbacks?.length === 1) {
    jobs.push(logged(`Task ${who(message)}: could not send its callback`, () => maybeSignature(callbacks[0], app).apply([value], {}, base)));
  } else if (callbacks && callbacks.length > 1) {
    // As Celery: groups among the callbacks are applied each on its own, the rest together as one group.
    const sigs = callbacks.map((c) => maybeSignature(c, app));
    for (const g of sigs.filter((s) => s instanceof Group)) {
      jobs.push(logged(`Task ${who(message)}: could not send a callback group`, () => g.apply([value], {}, base)));
    }
    const plain = sigs.filter((s) => !(s instanceof Group));
    if (plain.length) {
      jobs.push(logged(`Task ${who(message)}: could not send its callbacks`, () => new Group(plain, {}, app).apply([value], {}, base)));
    }
  }
  if (chain && chain.length > 0) {
    // The chain is stored reversed: the next step is the last element.
    const next = maybeSignature(chain[chain.length - 1], app);
    jobs.push(logged(`Task ${who(message)}: could not send the next step of its chain`, () =>
      next.apply([value], {}, { ...base, chain: chain.slice(0, -1) }),
    ));
  }
  await Promise.all(jobs);
}

/**
 * A chord header member finished (SUCCESS, FAILURE or REVOKED): the backend
 * counts it, and the last one sends the body (or fails it). Never rejects:
 * the member's own outcome is already stored.
 */
export async function chordPartReturn(
  app: Celery,
  sink: StateSink,
  message: TaskMessage,
  state: string,
  result: unknown,
  asTask: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn(),
): Promise<void> {
  const backend = app.backend;
  const chord = message.embed.chord;
  if (!chord || !backend.onChordPartReturn || !message.group) return;
  const part = { groupId: message.group, taskId: message.id, groupIndex: message.groupIndex, state, result };
  try {
    await chordPart(app, sink, part, chord, asTask);
  } catch (err) {
    log.error(`Task ${who(message)}: chord ${message.group}: ${(err as Error).message}`);
  }
}

/**
 * `asTask` runs the body's dispatch as the finished member (its parent, as in
 * Celery); only the member that completes the chord needs it, and the body as
 * a signature, so neither is built for every member.
 */
async function chordPart(
  app: Celery,
  sink: StateSink,
  part: ChordPart,
  chord: SignatureDict | Signature,
  asTask: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn(),
): Promise<void> {
  await app.backend.onChordPartReturn!(part, {
    fire: (results) => asTask(async () => {
      await maybeSignature(chord, app).apply([results], {}, {});
    }),
    fail: (error) => asTask(() => chordErrorFromStack(app, sink, maybeSignature(chord, app), error)),
  });
}

/**
 * A chord's body will not run: fails it (and a group body's every task), calls
 * its errbacks with its id, and fails the rest of its chain (Celery's
 * `chord_error_from_stack`).
 */
export async function chordErrorFromStack(app: Celery, sink: StateSink, callback: Signature, error: ChordError): Promise<void> {
  log.error(`Chord callback ${callback.task}[${callback.id ?? '?'}] failed: ${error.message}`);
  if (callback instanceof Group) {
    await failGroupBody(app, sink, callback, error);
  } else {
    const callbackId = (callback.id ??= randomUUID());
    const fakeRequest: FailedRequest & Record<string, unknown> = {
      id: callbackId, rootId: null, task: callback.task, args: callback.args, kwargs: callback.kwargs, errbacks: asList(callback.options.link_error),
    };
    await callErrbacks(app, fakeRequest, error, null, asList(callback.options.link_error));
    // As Python: stored without a request, so with the children of the running task (the errbacks just sent).
    await storeFailure(sink, callbackId, error, { children: currentTaskContext()?.children?.() ?? [] });
  }
  await failChain(app, sink, asList(callback.options.chain), error);
}

/** The header failed and the body is a group: each of its tasks fails, with its errbacks called (Celery #8786). */
async function failGroupBody(app: Celery, sink: StateSink, body: Group, error: ChordError): Promise<void> {
  const original = error.cause ?? error;
  const frozen = body.freeze();
  const groupErrbacks = asList(body.options.link_error);
  const byId = new Map<string, unknown[]>();
  for (const task of body.tasks) {
    const [id, errbacks] = resultErrbacks(task, app);
    if (id) byId.set(id, errbacks);
  }
  for (const result of frozen.leaves()) {
    const errbacks: unknown[] = [];
    for (const eb of [...(byId.get(result.id) ?? []), ...groupErrbacks]) {
      if (!errbacks.some((e) => JSON.stringify(e) === JSON.stringify(eb))) errbacks.push(eb);
    }
    await logged(`Chord group body ${result.id}`, () => callErrbacks(app, { id: result.id, rootId: null }, original, null, errbacks));
    await storeFailure(sink, result.id, original, {});
  }
  await storeFailure(sink, frozen.id, original, {});
}

/** The id of the result of `sig` and the errbacks linked to it (Celery's `_result_errbacks`). */
function resultErrbacks(sig0: unknown, app: Celery): [string | undefined, unknown[]] {
  let sig = maybeSignature(sig0, app);
  const errbacks: unknown[] = [];
  while (sig instanceof Chord && sig.body) {
    errbacks.push(...asList(sig.options.link_error));
    sig = maybeSignature(sig.body, app);
  }
  errbacks.push(...asList(sig.options.link_error));
  if (sig instanceof Group) for (const task of sig.tasks) errbacks.push(...resultErrbacks(task, app)[1]);
  return [sig.id, errbacks];
}

function asList(v: unknown): unknown[] {
  return v === undefined || v === null ? [] : Array.isArray(v) ? v : [v];
}

function storeFailure(sink: StateSink, taskId: string, error: unknown, ctx: MetaContext): Promise<void> {
  return sink.store(buildExceptionMeta(taskId, States.FAILURE, error, ctx), { replyTo: null, correlationId: taskId });
}

/**
 * After FAILURE (state stored): the chord counts the failed member, the rest
 * of the chain fails too, and the errbacks are sent with the task's id, in
 * the order Celery's `mark_as_failure` does it.
 */
export async function continueAfterFailure(
  app: Celery,
  sink: StateSink,
  message: TaskMessage,
  error: unknown,
  request?: FailedRequest,
): Promise<void> {
  const { chord, chain, errbacks } = message.embed;
  if (chord) await chordPartReturn(app, sink, message, States.FAILURE, serializeException(error));
  if (chain?.length) await logged(`Task ${who(message)}: failing its chain`, () => failChain(app, sink, chain, error));
  if (errbacks?.length) {
    await logged(`Task ${who(message)}: could not send its errbacks`, () =>
      callErrbacks(app, request ?? { id: message.id, rootId: message.rootId }, error, formatTraceback(error), errbacks),
    );
  }
}

/** What an errback called inline gets as its `request`: the failed task's request (or, for a chord, a stand-in). */
export interface FailedRequest {
  id: string;
  rootId: string | null;
}

/**
 * Calls the errbacks of a failed task as Celery's `_call_task_errbacks`
 * does: an errback registered here whose function takes more than the one
 * argument (`(request, exc, traceback)`, a "new-style" errback) is called
 * inline with them; every other one (old-style, bound, or registered only
 * on another worker, e.g. in Python) is sent, all in one group, with the
 * failed task's id as its argument.
 */
async function callErrbacks(app: Celery, failed: FailedRequest, exc: unknown, traceback: string | null, errbacks: unknown[]): Promise<void> {
  if (!errbacks.length) return;
  const sent: Signature[] = [];
  for (const e of errbacks) {
    const sig = maybeSignature(e, app);
    const task = app.tasks.get(sig.task);
    if (!task || !takesRequestExcTraceback(task, sig)) {
      sent.push(sig);
      continue;
    }
    try {
      const [args, kwargs] = sig.merge([failed, exc, traceback], {}, null);
      const fn = task.fn as (...a: unknown[]) => unknown;
      await fn(...bindArguments(task.name, paramsOfTask(task), args, kwargs));
    } catch (err) {
      log.error(`Errback ${sig.task} raised an exception: ${(err as Error).message}`);
    }
  }
  if (sent.length) await new Group(sent, {}, app).apply([failed.id], {}, { parent_id: failed.id, root_id: failed.rootId ?? failed.id });
}

/**
 * Celery's test for a new-style errback: a plain (not bound) task whose
 * function still takes more than one positional argument once the
 * signature's own args and kwargs are bound (from the left, as `partial` does).
 */
function takesRequestExcTraceback(task: Task<never, unknown>, sig: Signature): boolean {
  if (task.bound) return false;
  // Python's arity: positional parameters; *args (or ...rest) takes any number.
  if (paramsOfTask(task).some((p) => p.kind === 'spread' || p.kind === 'varargs')) return true;
  let params = paramsOfTask(task).filter((p) => p.kind === 'positional');
  if (!sig.immutable && (sig.args.length || Object.keys(sig.kwargs).length)) {
    params = params.slice(sig.args.length).filter((p) => p.name === null || !(p.name in sig.kwargs));
  }
  return params.length > 1;
}

/**
 * Marks every later step of a failed chain FAILURE (they will never run), so
 * waiting on the chain's result ends; a step that is a chord member also
 * counts for its chord (Celery's `_fail_chain`).
 */
export async function failChain(app: Celery, sink: StateSink, chain: unknown[], error: unknown): Promise<void> {
  const pending = [...chain];
  const exc = serializeException(error);
  while (pending.length) {
    const elem = pending.shift();
    if (!elem || typeof elem !== 'object') continue;
    const sig = elem instanceof Signature ? elem : maybeSignature(elem, app);
    const id = sig.id;
    const inChord = 'chord' in sig.options && sig.options.chord !== undefined;
    let alreadyFailed = false;
    if (inChord && id) alreadyFailed = PROPAGATE_STATES.has((await app.backend.get(id))?.status ?? States.PENDING);
    const groupId = typeof sig.options.group_id === 'string' ? sig.options.group_id : null;
    if (id) await storeFailure(sink, id, error, { groupId });
    if (inChord && !alreadyFailed && groupId && id && sig.options.chord) {
      const groupIndex = typeof sig.options.group_index === 'number' ? sig.options.group_index : null;
      await chordPart(app, sink, { groupId, taskId: id, groupIndex, state: States.FAILURE, result: exc }, sig.options.chord as SignatureDict);
    }
    // A chord step completes when its body does: fail the body too (Celery #9674).
    if (sig.subtaskType === 'chord' && sig.kwargs.body) pending.push(sig.kwargs.body);
  }
}

