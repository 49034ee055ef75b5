/**
 * Task replacement (`self.replace(sig)`) and `self.addToChord(sig)`, as
 * Celery's `Task.replace` / `Task.add_to_chord`: the replacement takes over
 * the running task's id, group, chord and place in its chain, so whoever
 * waits for the task (a `get()`, a chord, the next chain step) gets the
 * replacement's result instead.
 */
import type { Celery } from '../app/celery.js';
import type { TaskRequest } from '../app/task.js';
import { Ignore, ImproperlyConfigured } from '../errors.js';
import type { ResultNode } from '../result/async-result.js';
import { Chain } from './chain.js';
import { Group } from './group.js';
import { maybeSignature, Signature } from './signature.js';

function accumulate(app: Celery): Signature {
  return new Signature('celery.accumulate', [], { index: 0 }, {}, {}, app);
}

/**
 * Sends `replacement` in place of the running task (described by `request`)
 * and rejects with {@link Ignore}, which ends the run without storing a state.
 * `onReplace` (the task's hook) gets the complete replacement just before it is sent.
 */
export async function replaceTask(
  app: Celery,
  request: TaskRequest,
  replacement: Signature,
  onReplace?: ((sig: Signature) => void | Promise<void>) | undefined,
): Promise<never> {
  let sig: Signature = maybeSignature(replacement, app);
  if ('chord' in sig.options) throw new ImproperlyConfigured('A signature replacing a task must not be part of a chord');
  if (sig instanceof Chain && sig.tasks.length === 0) throw new ImproperlyConfigured('Cannot replace with an empty chain');
  // A group is upgraded to a chord, so that callbacks can be linked onto its body.
  if (sig instanceof Group) sig = sig.pipe(accumulate(app));
  if (sig instanceof Chain && sig.tasks.at(-1) instanceof Group) {
    sig.tasks = [...sig.tasks];
    sig.tasks[sig.tasks.length - 1] = sig.tasks.at(-1)!.pipe(accumulate(app));
  }
  for (const callback of request.callbacks ?? []) sig.link(callback);
  for (const errback of request.errbacks ?? []) sig.linkError(errback);
  // A chain's callbacks belong on its final task (leaving them on the chain too would link them twice).
  if (sig instanceof Chain && 'link' in sig.options) {
    const finalTask = sig.tasks.at(-1)!;
    const links = finalTask.options.link;
    const list = Array.isArray(links) ? links : links === undefined || links === null ? [] : [links];
    const extra = sig.options.link;
    finalTask.options.link = [...list, ...(Array.isArray(extra) ? extra : [extra])];
    delete sig.options.link;
  }
  // The replacement keeps the replaced task's id, so existing result handles stay valid.
  sig.freeze(request.id);
  const nesting = (request.replacedTaskNesting ?? 0) + 1;
  Object.assign(sig.options, {
    chord: request.chord ?? null,
    group_id: request.groupId ?? null,
    group_index: request.groupIndex ?? null,
    root_id: request.rootId ?? null,
    replaced_task_nesting: nesting,
  });
  if (sig instanceof Chain) for (const task of sig.tasks) task.options.replaced_task_nesting = nesting;
  // The steps that followed the replaced task in its chain follow the replacement.
  for (const step of [...(request.chain ?? [])].reverse()) {
    const next = maybeSignature(step, app);
    next.options.replaced_task_nesting = nesting;
    sig = sig.pipe(next);
  }
  // Celery's Task.on_replace hook (e.g. stamping the replacement); the replaced task's own stamps are not carried over, as in Celery 5.7.
  if (onReplace) await onReplace(sig);
  await sig.delay();
  throw new Ignore('Replaced by new task');
}

/**
 * Adds `sig` to the chord the running task belongs to (the body then waits
 * for it too), and sends it unless `lazy`. Needs a backend that counts chords.
 */
export async function addToChord(app: Celery, request: TaskRequest, sig0: Signature, lazy = false): Promise<Signature | ResultNode> {
  if (!request.chord || !request.groupId) throw new ImproperlyConfigured('Current task is not member of any chord');
  const sig = maybeSignature(sig0, app);
  Object.assign(sig.options, {
    group_id: request.groupId,
    group_index: request.groupIndex,
    chord: request.chord,
    root_id: request.rootId,
  });
  sig.freeze();
  if (!app.backend.addToChord) throw new ImproperlyConfigured(`The result backend ${app.backend.displayUrl} does not support addToChord: use redis://`);
  await app.backend.addToChord(request.groupId);
  return lazy ? sig : ((await sig.delay()) as ResultNode);
}
