/**
 * Continuing workflows after a task ran, as a Python worker does: on success,
 * `link` callbacks and the next step of a chain are sent with the result
 * prepended to their args (unless immutable); on failure, `link_error`
 * errbacks are sent with the failed task's id. Python calls errbacks that
 * take (request, exc, traceback) inline; a TypeScript worker cannot call
 * Python code, so every errback is sent as a task with `[task_id]`.
 *
 * Chords need counters kept in the result backend; they are not executed
 * here yet, and a chord member says so loudly instead of dropping it silently.
 */
import type { Celery } from '../app/celery.js';
import { applyOptionsOf } from '../app/signature.js';
import type { Signature, TaskMessage } from '../protocol/message.js';
import { getLogger } from '../support/log.js';

const log = getLogger('MainProcess');

function describe(sig: Signature): string {
  return `${sig.task}${sig.subtask_type ? ` (${sig.subtask_type})` : ''}`;
}

async function send(app: Celery, sig: Signature, extraArgs: unknown[], message: TaskMessage, chain: Signature[] | null): Promise<void> {
  if (sig.subtask_type) {
    log.error(`Task ${message.task}[${message.id}]: cannot apply a ${sig.subtask_type} signature (${describe(sig)}); ts-celery runs plain signatures only`);
    return;
  }
  const args = sig.immutable ? (sig.args ?? []) : [...extraArgs, ...(sig.args ?? [])];
  const options = { ...applyOptionsOf(sig), parentId: message.id, rootId: message.rootId ?? message.id };
  if (message.priority !== null && options.priority === undefined) options.priority = message.priority;
  if (chain) await app.sendChainStep(sig.task, args, sig.kwargs ?? {}, options, chain);
  else await app.sendTask(sig.task, args, sig.kwargs ?? {}, options);
}

async function sendAll(app: Celery, message: TaskMessage, jobs: Array<[Signature, unknown[], Signature[] | null]>): Promise<void> {
  const results = await Promise.allSettled(jobs.map(([sig, args, chain]) => send(app, sig, args, message, chain)));
  results.forEach((r, i) => {
    if (r.status === 'rejected') {
      log.error(`Task ${message.task}[${message.id}]: could not send ${describe(jobs[i]![0])}: ${(r.reason as Error).message}`);
    }
  });
}

/** After SUCCESS: callbacks and the next chain step get the return value. */
export function continueAfterSuccess(app: Celery, message: TaskMessage, value: unknown): Promise<void> {
  const { callbacks, chain, chord } = message.embed;
  if (chord) {
    log.warning(`Task ${message.task}[${message.id}] is a chord member; ts-celery does not run chord callbacks yet (${describe(chord)} will not run)`);
  }
  const jobs: Array<[Signature, unknown[], Signature[] | null]> = (callbacks ?? []).map((sig) => [sig, [value], null]);
  if (chain && chain.length > 0) {
    // The chain is stored in reverse: the next step is the last element.
    jobs.push([chain[chain.length - 1]!, [value], chain.slice(0, -1)]);
  }
  return jobs.length ? sendAll(app, message, jobs) : Promise.resolve();
}

/** After FAILURE: errbacks get the failed task's id. */
export function continueAfterFailure(app: Celery, message: TaskMessage): Promise<void> {
  const errbacks = message.embed.errbacks;
  if (!errbacks?.length) return Promise.resolve();
  return sendAll(app, message, errbacks.map((sig) => [sig, [message.id], null]));
}
