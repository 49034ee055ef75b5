/**
 * The TypeScript port of Celery 5.7.0's `t/integration/tasks.py`: the tasks
 * Celery's own integration suite sends, under the same names
 * (`t.integration.tasks.<name>`), with the same behaviour, for
 * `ts-celery worker -A test/celery-suite/tasks` (see ../README.md).
 *
 * Tasks that need an API ts-celery does not have yet (none today) are registered under their names all the
 * same and fail with {@link MissingFeature}, which names what is missing, so
 * the suite's score is honest. The list of those stubs is in ../README.md
 * ("Stub tasks"); whoever builds the feature replaces the stub with the real port.
 *
 * Env (set by ../run.ts): TEST_BROKER and TEST_BACKEND, as Celery's suite reads
 * them; REDIS_HOST, REDIS_PORT as the suite's `get_redis_connection()` reads
 * them, plus CELERY_SUITE_REDIS_DB (the suite's plugin points the Python side
 * at the same database).
 */
import { appendFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { Celery, Chain, Chord, Group, Reject, Signature, States, chain, chord, getLogger, group, maybeSignature, type BoundTask, type StampingVisitor, type TaskOptions } from 'ts-celery';
import { MissingFeature, needs, type IssueRef } from './missing.js';
import { ExpectedException, PyTypeError, PyValueError, UnpickleableException } from './errors.js';
import { pyAdd, pySum, isoTime } from './python.js';

export const app = new Celery('t.integration', {
  // kombu's `pyamqp://` is AMQP over py-amqp; ts-celery reads both schemes.
  broker_url: process.env.TEST_BROKER ?? 'amqp://guest:guest@127.0.0.1:5672//',
  result_backend: process.env.TEST_BACKEND ?? 'redis://127.0.0.1:6379/0',
  // As celery.contrib.testing.app's DEFAULT_TEST_CONFIG, which the suite's app starts from
  // (broker and backend come from TEST_BROKER/TEST_BACKEND instead, as in the suite).
  worker_hijack_root_logger: false,
  worker_log_color: false,
  accept_content: ['json'],
  enable_utc: true,
  timezone: 'UTC',
  broker_heartbeat: 0,
  // As the suite's celery_config fixture.
  result_extended: true,
  task_create_missing_queues: false,
});

const NAME = 't.integration.tasks';
const logger = getLogger(NAME);

let redis: Redis | null = null;
/** The suite's `get_redis_connection()`: REDIS_HOST:REDIS_PORT, on the suite's database. */
function redisConnection(): Redis {
  return (redis ??= new Redis({
    host: process.env.REDIS_HOST ?? '127.0.0.1',
    port: Number(process.env.REDIS_PORT ?? 6379),
    db: Number(process.env.CELERY_SUITE_REDIS_DB ?? 0),
    maxRetriesPerRequest: 3,
  }));
}

const sleep = (seconds: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, seconds * 1000);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    }, { once: true });
  });

/**
 * A stub for a task that needs a missing API (see ./missing.ts). `_pyParams` are the
 * Python parameter names, for whoever writes the real port.
 */
const stub = (name: string, _pyParams: string[], what: string, feature: string, issue: IssueRef, options: TaskOptions = {}) =>
  app.task(
    // `*args, **kwargs`: whatever the suite sends, the stub's own error is the one reported.
    { ...options, name: `${NAME}.${name}`, params: ['*args', '**kwargs'] } as TaskOptions & { bind?: false },
    needs(what, feature, issue),
  );

/**
 * `<name>.s(*args, **kwargs)` of a task of this module, untyped as Python's (the
 * typed `task.s()` cannot take a spread of unknown arguments).
 */
const sig = (name: string, args: unknown[] = [], kwargs: Record<string, unknown> = {}): Signature =>
  app.signature(`${NAME}.${name}`, args, kwargs);
/** `<name>.si(*args, **kwargs)`: immutable. */
const si = (name: string, args: unknown[] = [], kwargs: Record<string, unknown> = {}): Signature =>
  app.signature(`${NAME}.${name}`, args, kwargs, { immutable: true });

/** Registers `t.integration.tasks.<name>`. Bound functions take `self: BoundTask` first. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the ports keep Python's loose signatures
const task = (name: string, options: TaskOptions, fn: (...args: any[]) => unknown) =>
  app.task({ ...options, name: `${NAME}.${name}` } as TaskOptions & { bind?: false }, fn as (...args: unknown[]) => unknown);

// ---- celery.contrib.testing.tasks -----------------------------------------
/** What the suite's worker fixture sends to check the worker is up. */
export const ping = app.task({ name: 'celery.ping' }, () => 'pong');

// ---- plain tasks ----------------------------------------------------------
export const identity = task('identity', {}, (x: unknown) => x);
export const add = task('add', { params: ['x', 'y', 'z?'] }, (x: unknown, y: unknown, z?: unknown) =>
  // `if z:` in Python: 0, None, '' and [] count as absent.
  z !== undefined && z !== null && z !== 0 && z !== '' && !(Array.isArray(z) && z.length === 0) ? pyAdd(pyAdd(x, y), z) : pyAdd(x, y),
);
export const mul = task('mul', {}, (x: number, y: number) => x * y);
export const writeToFileAndReturnInt = task('write_to_file_and_return_int', {}, async (fileName: string, i: number) => {
  await appendFile(fileName, `${i}\n`);
  return i;
});
export const addNotTyped = task('add_not_typed', {}, (x: unknown, y: unknown) => pyAdd(x, y));
export const addIgnoreResult = task('add_ignore_result', { ignoreResult: true }, (x: unknown, y: unknown) => pyAdd(x, y));
export const addWithResult = task('add_with_result', { ignoreResult: false }, (x: unknown, y: unknown) => pyAdd(x, y));
export const raiseError = task('raise_error', { params: ['*args'] }, (_args: unknown[]) => {
  throw new PyValueError('deliberate error');
});
/** `(add.s(x, x) | add.s(y)).apply_async()`: a two-step chain is a task with a `link`. */
export const chainAdd = task('chain_add', {}, async (x: number, y: number) => {
  await add.applyAsync([x, x], {}, { link: add.s(y) });
  return null;
});
export const chordAdd = task('chord_add', {}, async (x: unknown, y: unknown) => {
  await chord(sig('add', [x, x]), sig('add', [y])).applyAsync();
  return null;
});
export const delayedSum = task('delayed_sum', { params: ['numbers', 'pause_time?'] }, async (numbers: number[], pauseTime = 1) => {
  await sleep(pauseTime);
  return pySum(numbers);
});
export const delayedSumWithSoftGuard = task(
  'delayed_sum_with_soft_guard',
  { bind: true, params: ['numbers', 'pause_time?'] },
  async (self: BoundTask, numbers: number[], pauseTime = 1) => {
    try {
      await sleep(pauseTime, self.signal);
      return pySum(numbers);
    } catch (err) {
      if ((err as Error).name === 'SoftTimeLimitExceeded') return 0;
      throw err;
    }
  },
);
export const tsum = task('tsum', {}, (nums: number[]) => pySum(nums));
export const xsum = task('xsum', {}, (nums: unknown[]) =>
  pySum(nums.map((n) => (Array.isArray(n) ? pySum(n) : n))),
);
export const sumAndRecord = task('sum_and_record', { bind: true }, async (self: BoundTask, values: number[], redisKey: string) => {
  const result = pySum(values);
  await redisConnection().rpush(redisKey, self.request.id);
  return result;
});

// ---- task replacement and chords from inside a task ----------------------
export const addReplaced = task('add_replaced', { bind: true }, (self: BoundTask, x: unknown, y: unknown) => self.replace(sig('add', [x, y])));
export const recordReplacedTaskNesting = task(
  'record_replaced_task_nesting',
  { bind: true, params: ['replacements', 'nesting?'] },
  (self: BoundTask, replacements: number, nesting: number[] | null = null) => {
    const levels = nesting ?? [];
    levels.push(self.request.replacedTaskNesting);
    if (replacements) {
      // Keep the caller's result queue when using the RPC backend.
      const replacement = sig('record_replaced_task_nesting', [replacements - 1, levels]);
      if (self.request.replyTo) replacement.set({ replyTo: self.request.replyTo });
      return self.replace(replacement);
    }
    return levels;
  },
);
export const addReplacedWithChain = task('add_replaced_with_chain', { bind: true }, (self: BoundTask, x: unknown, y: unknown) =>
  self.replace(chain(sig('add', [x, y]), sig('identity'))),
);
/** `link_msg` given: the link is `redis_echo.si(link_msg)`; else `redis_echo.s()` (gets the chain's result). */
function echoLink(linkMsg: unknown): Signature {
  const link = sig('redis_echo');
  if (linkMsg !== null) {
    link.args = [linkMsg];
    link.set({ immutable: true });
  }
  return link;
}
export const replaceWithChain = task(
  'replace_with_chain',
  { bind: true, params: ['*args', 'link_msg?'] },
  (self: BoundTask, args: unknown[], linkMsg: unknown = null) => {
    const c = chain(sig('identity', args), sig('identity'));
    c.link(echoLink(linkMsg));
    return self.replace(c);
  },
);
export const replaceWithChainWhichRaises = task(
  'replace_with_chain_which_raises',
  { bind: true, params: ['*args', 'link_msg?'] },
  (self: BoundTask, args: unknown[], linkMsg: unknown = null) => {
    const c = chain(sig('identity', args), sig('raise_error'));
    c.linkError(echoLink(linkMsg));
    return self.replace(c);
  },
);
export const replaceWithEmptyChain = task('replace_with_empty_chain', { bind: true, params: ['*_'] }, (self: BoundTask) => self.replace(chain()));
export const replaceWithChainWhichContainsAGroup = task('replace_with_chain_which_contains_a_group', { bind: true }, (self: BoundTask) =>
  self.replace(chain(sig('add', [1, 2]), group(sig('add', [1]), sig('add', [1])))),
);
export const addToAll = task('add_to_all', { bind: true }, (self: BoundTask, nums: unknown[], val: unknown) =>
  self.replace(group(nums.map((num) => sig('add', [num, val])))),
);
export const addToAllToChord = task('add_to_all_to_chord', { bind: true }, async (self: BoundTask, nums: unknown[], val: unknown) => {
  for (const num of nums) await self.addToChord(sig('add', [num, val]));
  return 0;
});
export const addChordToChord = task('add_chord_to_chord', { bind: true }, async (self: BoundTask, nums: unknown[], val: unknown) => {
  await self.addToChord(group(nums.map((num) => sig('add', [num, val]))).pipe(sig('tsum')));
  return 0;
});
export const secondOrderReplace1 = task('second_order_replace1', { bind: true, params: ['state?'] }, async (self: BoundTask, state = false) => {
  if (!state) {
    await redisConnection().rpush('redis-echo', 'In A');
    return self.replace(chain(sig('second_order_replace2'), si('second_order_replace1', [], { state: true })));
  }
  await redisConnection().rpush('redis-echo', 'Out A');
  return null;
});
export const secondOrderReplace2 = task('second_order_replace2', { bind: true, params: ['state?'] }, async (self: BoundTask, state = false) => {
  if (!state) {
    await redisConnection().rpush('redis-echo', 'In B');
    return self.replace(chain(sig('redis_echo', ['In/Out C']), si('second_order_replace2', [], { state: true })));
  }
  await redisConnection().rpush('redis-echo', 'Out B');
  return null;
});
export const failReplaced = task('fail_replaced', { bind: true, params: ['*args'] }, (self: BoundTask, args: unknown[]) => self.replace(si('fail', args)));
/** `StampOnReplace`: the visitor `StampedTaskOnReplace.on_replace` stamps the replacement with. */
const stampOnReplace: StampingVisitor = { onSignature: () => ({ StampOnReplace: 'This is the replaced task' }) };
/** `base=StampedTaskOnReplace`: its `on_replace` stamps the replacement (the task option `onReplace`). */
export const replaceWithStampedTask = task(
  'replace_with_stamped_task',
  { bind: true, params: ['replace_with?'], onReplace: (replacement: Signature) => void replacement.stamp(stampOnReplace) },
  (self: BoundTask, replaceWith: Signature | Record<string, unknown> | null = null) =>
    self.replace(replaceWith === null ? sig('replaced_with_me') : maybeSignature(replaceWith, app)),
);
/**
 * `(add.s(1, 1) | add.s(2) | group(add.s(3), add.s(4)) | add.s(5))()`, returning the
 * chain's AsyncResult: it is stored as Celery's result tuple (its toJSON), as Python's
 * backend stores a returned result (`prepare_value`).
 */
export const buildChainInsideTask = task('build_chain_inside_task', { bind: true }, (_self: BoundTask) =>
  sig('add', [1, 1]).pipe(sig('add', [2])).pipe(group(sig('add', [3]), sig('add', [4]))).pipe(sig('add', [5])).applyAsync(),
);

// ---- misc -------------------------------------------------------------------
export const printUnicode = task(
  'print_unicode',
  { params: ['log_message?', 'print_message?'] },
  (logMessage = 'håå®ƒ valmuefrø', printMessage = 'hiöäüß') => {
    logger.warning(logMessage);
    process.stdout.write(`${printMessage}\n`);
    return null;
  },
);
export const returnException = task('return_exception', {}, (e: unknown) => [e, true]);
// `def sleeping(i, **_)`: extra keyword arguments are accepted and ignored.
export const sleeping = task('sleeping', { params: ['i', '**_'] }, async (i: number) => {
  await sleep(i);
  return null;
});
export const ids = task('ids', { bind: true }, (self: BoundTask, i: unknown) => [self.request.rootId, self.request.parentId, i]);
export const collectIds = task('collect_ids', { bind: true }, (self: BoundTask, res: unknown, i: unknown) => [res, [self.request.rootId, self.request.parentId, i]]);

// ---- retries ----------------------------------------------------------------
/** Python keeps `attempt` on the task object: one count per worker process. */
let attempt = 0;
export const retry = task('retry', { bind: true, defaultRetryDelay: 1, params: ['return_value?'] }, async (self: BoundTask, returnValue?: unknown) => {
  if (returnValue) {
    process.stdout.write(`attempt ${attempt}\n`);
    if (attempt >= 3) {
      attempt = 0;
      return returnValue;
    }
    attempt += 1;
  }
  return self.retry({ exc: new ExpectedException(), countdown: 5 });
});
export const retryUnpickleable = task(
  'retry_unpickleable',
  { bind: true, defaultRetryDelay: 1 },
  async (self: BoundTask, foo: unknown, bar: unknown, retry_kwargs: { countdown?: number; max_retries?: number }) =>
    self.retry({ exc: new UnpickleableException(foo, bar), countdown: retry_kwargs.countdown, maxRetries: retry_kwargs.max_retries }),
);
export const retryWithArgsAfterKwargs = task(
  'retry_with_args_after_kwargs',
  { bind: true, maxRetries: 1, params: ['foo', 'bar', 'label?'] },
  async (self: BoundTask, foo: number, bar: number, label: unknown = null) => {
    if (!self.request.retries) return self.retry({ args: [foo + 1, bar + 1], countdown: 0 });
    return { foo, bar, label, retries: self.request.retries, is_eager: false };
  },
);
export const retryWithKwargsAfterArgs = task(
  'retry_with_kwargs_after_args',
  { bind: true, maxRetries: 1 },
  async (self: BoundTask, foo: number, bar: number) => {
    if (!self.request.retries) return self.retry({ kwargs: { foo: foo + 1 }, countdown: 0 });
    return { foo, bar, retries: self.request.retries, is_eager: false };
  },
);
// `def retry_once(self, *args, expires=None, max_retries=1, countdown=0.1)`: as in Python, the
// retry gets `expires` as passed (None: the retried run never expires).
export const retryOnce = task(
  'retry_once',
  { bind: true, expires: 120, maxRetries: 1, params: ['*args', 'expires?', 'max_retries?', 'countdown?'] },
  async (self: BoundTask, _args: unknown[], expires: number | null = null, maxRetries = 1, countdown = 0.1) => {
    if (self.request.retries) return self.request.retries;
    return self.retry({ countdown, maxRetries, expires });
  },
);
export const retryOnceIgnoreResult = task('retry_once_ignore_result', { bind: true, ignoreResult: true }, async (self: BoundTask) => {
  if (!self.request.retries) return self.retry({ countdown: 0 });
  return self.request.retries;
});
export const retryOnceWithResult = task('retry_once_with_result', { bind: true, ignoreResult: false }, async (self: BoundTask) => {
  if (!self.request.retries) return self.retry({ countdown: 0 });
  return self.request.retries;
});
export const retryOncePriority = task(
  'retry_once_priority',
  { bind: true, maxRetries: 1, params: ['*args', 'expires?', 'max_retries?', 'countdown?'] },
  async (self: BoundTask, _args: unknown[], _expires = 60, maxRetries = 1, countdown = 0.1) => {
    if (self.request.retries) return self.request.deliveryInfo.priority;
    return self.retry({ countdown, maxRetries });
  },
);
export const retryOnceHeaders = task(
  'retry_once_headers',
  { bind: true, maxRetries: 1, params: ['*args', 'max_retries?', 'countdown?'] },
  async (self: BoundTask, _args: unknown[], maxRetries = 1, countdown = 0.1) => {
    if (self.request.retries) return self.request.headers;
    return self.retry({ countdown, maxRetries });
  },
);

// ---- Redis ------------------------------------------------------------------
async function redisEchoImpl(message: unknown, redisKey = 'redis-echo'): Promise<null> {
  await redisConnection().rpush(redisKey, String(message));
  return null;
}
async function redisCountImpl(redisKey = 'redis-count'): Promise<null> {
  await redisConnection().incr(redisKey);
  return null;
}
export const redisEcho = task('redis_echo', { params: ['message', 'redis_key?'] }, redisEchoImpl);
export const redisEchoGroupId = task('redis_echo_group_id', { bind: true, params: ['_', 'redis_key?'] }, async (self: BoundTask, _: unknown, redisKey = 'redis-group-ids') => {
  // redis-py writes None as the string 'None'.
  await redisConnection().rpush(redisKey, self.request.groupId ?? 'None');
  return null;
});
export const redisCount = task('redis_count', { params: ['redis_key?'] }, redisCountImpl);

// ---- failures ---------------------------------------------------------------
export const fail = task('fail', { params: ['*args'] }, (args: unknown[]) => {
  throw new ExpectedException('Task expected to fail', ...args);
});
export const failUnpickleable = task('fail_unpickleable', {}, (foo: unknown, bar: unknown) => {
  throw new UnpickleableException(foo, bar);
});

// ---- the request ----------------------------------------------------------
export const returnPriority = task('return_priority', { bind: true, params: ['*_args'] }, (self: BoundTask) => `Priority: ${self.request.deliveryInfo.priority ?? 'None'}`);
export const returnRequestEta = task('return_request_eta', { bind: true }, (self: BoundTask) => (self.request.eta ? isoTime(self.request.eta) : null));
export const returnProperties = task('return_properties', { bind: true }, (self: BoundTask) => self.request.properties);

/** `ClassBasedAutoRetryTask`: autoretry_for ValueError, one retry, backoff. */
export const autoRetryClassTask = app.task(
  { name: 'auto_retry_class_task', bind: true, autoretryFor: [PyValueError], maxRetries: 1, retryBackoff: true },
  (self: BoundTask) => {
    if (self.request.retries) return self.request.retries;
    throw new PyValueError();
  },
);

// ---- signatures returned as values, rebuilt from dicts ----------------------
// The signatures returned wouldn't run (their arguments are missing); they are never sent.
export const returnNestedSignatureChainChain = task('return_nested_signature_chain_chain', {}, () => chain(chain([sig('add')])));
export const returnNestedSignatureChainGroup = task('return_nested_signature_chain_group', {}, () => chain(group([sig('add')])));
export const returnNestedSignatureChainChord = task('return_nested_signature_chain_chord', {}, () => chain(chord([sig('add')], sig('add'))));
export const returnNestedSignatureGroupChain = task('return_nested_signature_group_chain', {}, () => group(chain([sig('add')])));
export const returnNestedSignatureGroupGroup = task('return_nested_signature_group_group', {}, () => group(group([sig('add')])));
export const returnNestedSignatureGroupChord = task('return_nested_signature_group_chord', {}, () => group(chord([sig('add')], sig('add'))));
export const returnNestedSignatureChordChain = task('return_nested_signature_chord_chain', {}, () => chord(chain([sig('add')]), sig('add')));
export const returnNestedSignatureChordGroup = task('return_nested_signature_chord_group', {}, () => chord(group([sig('add')]), sig('add')));
export const returnNestedSignatureChordChord = task('return_nested_signature_chord_chord', {}, () => chord(chord([sig('add')], sig('add')), sig('add')));

/** `Signature.from_dict(sig_dict)`, then every nested element must be a signature object too. */
export const rebuildSignature = task('rebuild_signature', {}, (sigDict: Record<string, unknown>) => {
  const recurse = (s: unknown): void => {
    if (!(s instanceof Signature)) throw new PyTypeError(`${JSON.stringify(s)} is not a signature object`);
    if (s instanceof Chain || s instanceof Group) for (const t of s.tasks) recurse(t);
    if (s instanceof Chord) {
      for (const t of s.headerTasks) recurse(t);
      recurse(s.body);
    }
  };
  recurse(Signature.fromDict(sigDict, app));
  return null;
});

// ---- errbacks ---------------------------------------------------------------
// The worker calls a (request, exc, traceback) errback it has inline, as Python's does;
// old-style errbacks are sent as tasks with the failed task's id.
export const errbackOldStyle = task('errback_old_style', {}, async (requestId: string) => {
  await redisCountImpl(requestId);
  return requestId;
});
function requestOf(request: unknown, taskName: string): { id: string } {
  if (request && typeof request === 'object' && typeof (request as { id?: unknown }).id === 'string') return request as { id: string };
  throw new PyTypeError(
    `${taskName} got ${JSON.stringify(request)} instead of a request: an errback taking (request, exc, traceback) ` +
      'must be called inline by the worker with the failed request, as Python does',
  );
}
export const errbackNewStyle = task('errback_new_style', { params: ['request', 'exc?', 'tb?'] }, async (request: unknown) => {
  const { id } = requestOf(request, 'errback_new_style');
  await redisCountImpl(id);
  return id;
});
export const errbackOldStyleWithArgs = task('errback_old_style_with_args', {}, async (requestId: string, label: unknown) => {
  await redisEchoImpl(label, requestId);
  return null;
});
export const errbackNewStyleWithArgs = task(
  'errback_new_style_with_args',
  { params: ['request', 'exc', 'tb', 'label'] },
  async (request: unknown, _exc: unknown, _tb: unknown, label: unknown) => {
    await redisEchoImpl(label, requestOf(request, 'errback_new_style_with_args').id);
    return null;
  },
);
export const replacedWithMe = task('replaced_with_me', {}, () => true);

// ---- pydantic=True tasks: models in and out are JSON objects on the wire ----
function addModel(data: unknown): { result: number } {
  const d = data as { x?: unknown; y?: unknown } | null;
  const bad = ['x', 'y'].filter((k) => !Number.isInteger((d as Record<string, unknown> | null)?.[k]));
  if (typeof d !== 'object' || d === null || bad.length) {
    throw new PyValueError(`1 validation error for AddParameterModel: ${bad.join(', ')} must be integers, got ${JSON.stringify(data)}`);
  }
  return { result: (d.x as number) + (d.y as number) };
}
export const addPydantic = task('add_pydantic', {}, (data: unknown) => addModel(data));
export const addPydanticStringAnnotations = task('add_pydantic_string_annotations', {}, (data: unknown) => addModel(data));

// ---- Reject ------------------------------------------------------------------
/** First delivery: store SUCCESS by hand, then Reject to be redelivered; second delivery: 'dedup-pass'. */
export const storeSuccessThenReject = task('store_success_then_reject', { bind: true, acksLate: true }, async (self: BoundTask) => {
  if (!self.request.deliveryInfo.redelivered) {
    // `self.backend.store_result(self.request.id, 'first-pass', states.SUCCESS)`
    await self.app.backend.store({ status: States.SUCCESS, result: 'first-pass', traceback: null, children: [], date_done: new Date().toISOString(), task_id: self.request.id });
    throw new Reject(null, true);
  }
  return 'dedup-pass';
});
/** First delivery: Reject(requeue=True); second delivery: succeed. */
export const rejectThenSucceed = task('reject_then_succeed', { bind: true, acksLate: true }, (self: BoundTask) => {
  if (!self.request.deliveryInfo.redelivered) throw new Reject(null, true);
  return 'second-pass';
});
/** Reject permanently, so the worker records a terminal FAILURE. */
export const rejectWithoutRequeue = task('reject_without_requeue', {}, () => {
  throw new Reject('rejected', false);
});

// ---- time limits --------------------------------------------------------------
export const softTimeLimitMustExceedTimeLimit = task('soft_time_limit_must_exceed_time_limit', { softTimeLimit: 2, timeLimit: 1 }, () => null);
const timeLimits = (self: BoundTask) => ({
  time_limit: self.request.timeLimit[0],
  soft_time_limit: self.request.timeLimit[1],
});
export const returnRequestTimeLimits = task('return_request_time_limits', { bind: true }, timeLimits);
export const taskWithDeclaredTimeLimits = task('task_with_declared_time_limits', { bind: true, timeLimit: 60, softTimeLimit: 45 }, timeLimits);

export { MissingFeature };
