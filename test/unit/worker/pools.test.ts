import { expect } from 'chai';
import { Celery, ImproperlyConfigured } from '../../../src/index.js';
import { AsyncPool } from '../../../src/worker/pools/async.js';
import type { TaskCall } from '../../../src/worker/pools/types.js';
import { infoToTuple, messageToTuple, tupleToInfo, tupleToMessage } from '../../../src/worker/pools/run-packet.js';
import { completeTaskMessage, EMPTY_EMBED, NO_EXTRA_HEADERS, NO_TIME_LIMIT, type TaskMessage } from '../../../src/protocol/message.js';
import type { DeliveryInfo } from '../../../src/broker/types.js';

/** A TaskCall whose function is `fn`, for the async pool alone. */
function call(id: string, fn: (signal: AbortSignal) => unknown): TaskCall & { controller: AbortController } {
  const controller = new AbortController();
  return {
    controller,
    task: { name: 't' } as TaskCall['task'],
    message: { id } as TaskCall['message'],
    deliveryInfo: {} as TaskCall['deliveryInfo'],
    properties: {},
    callHere: () => fn(controller.signal),
    aborter: () => controller,
    retry: () => {
      throw new Error('no retry here');
    },
    addChild: () => undefined,
  };
}

describe('worker_pool and the threads settings', () => {
  it('accepts async and threads, and says what to use for Celery\'s other pools', () => {
    expect(new Celery('p', { worker_pool: 'threads' }).conf.worker_pool).to.equal('threads');
    expect(() => new Celery('p', { worker_pool: 'prefork' as never })).to.throw(ImproperlyConfigured, /"prefork" is not available.*use threads/);
    expect(() => new Celery('p', { worker_pool: 'eventlet' as never })).to.throw(ImproperlyConfigured, /use async/);
  });
  it('checks worker_thread_resource_limits keys and values', () => {
    expect(new Celery('p', { worker_thread_resource_limits: { maxOldGenerationSizeMb: 256 } }).conf.worker_thread_resource_limits).to.deep.equal({ maxOldGenerationSizeMb: 256 });
    expect(() => new Celery('p', { worker_thread_resource_limits: { maxOldGenerationSize: 256 } as never })).to.throw(ImproperlyConfigured, /did you mean "maxOldGenerationSizeMb"/);
    expect(() => new Celery('p', { worker_thread_resource_limits: { stackSizeMb: -1 } })).to.throw(ImproperlyConfigured, /positive number/);
  });
});

describe('the async pool', () => {
  it('returns a plain value as is, and the promise of an async function', async () => {
    const pool = new AsyncPool(2);
    expect(pool.invoke(call('a', () => 5), [])).to.equal(5);
    expect(await pool.invoke(call('b', async () => 6), [])).to.equal(6);
  });
  it('cannot stop a promise: terminate() is the run\'s to do (execute.ts), so it says false', () => {
    expect(new AsyncPool(1).terminate()).to.equal(false);
  });
  it('resize() changes how many jobs run at once', async () => {
    const pool = new AsyncPool(1);
    const releases: Array<() => void> = [];
    let started = 0;
    const job = { run: () => new Promise<void>((resolve) => { started++; releases.push(resolve); }), cancel: () => undefined };
    pool.submit(job);
    pool.submit(job);
    pool.submit(job);
    expect(started).to.equal(1);
    pool.resize(3);
    expect(started).to.equal(3);
    expect(pool.limit).to.equal(3);
    for (const release of releases) release();
    await pool.idle();
  });
});

describe('the threads pool\'s run packet', () => {
  it('carries every field of a task message and its delivery info through a structured clone', () => {
    const message: TaskMessage = {
      id: 'id-1', task: 'tasks.add', args: [1, { a: 2 }], kwargs: { k: 'v' },
      embed: { callbacks: [{ task: 'cb', args: [], kwargs: {}, options: {}, subtask_type: null, immutable: false }] as never, errbacks: null, chain: null, chord: null },
      retries: 3, eta: 1_700_000_000_000, expires: 1_700_000_100_000, rootId: 'root', parentId: 'parent', group: 'g', groupIndex: 2,
      shadow: 'shadow', timeLimit: [10, 5], ignoreResult: true, origin: 'gen1@host', argsrepr: '(1,)', kwargsrepr: '{}', replyTo: 'reply',
      priority: 7, extraHeaders: { custom: ['x'] }, protocol: 2,
    };
    const info: DeliveryInfo = { exchange: 'ex', routingKey: 'rk', redelivered: true, consumerTag: 'ctag', queue: 'q', priority: 7 };
    const [m, i] = structuredClone([messageToTuple(message), infoToTuple(info)]);
    expect(tupleToMessage(m)).to.deep.equal(message);
    expect(tupleToInfo(i)).to.deep.equal(info);
    // Every key of a message has its place in the tuple.
    expect(Object.keys(tupleToMessage(m)).sort()).to.deep.equal(Object.keys(message).sort());
  });
  it('sends the shared frozen defaults as null and brings back that thread\'s own', () => {
    const message = { ...completeTaskMessage({ id: 'x', task: 't' }), timeLimit: NO_TIME_LIMIT, extraHeaders: NO_EXTRA_HEADERS };
    expect(message.embed).to.equal(EMPTY_EMBED);
    const tuple = structuredClone(messageToTuple(message));
    expect([tuple[4], tuple[13], tuple[20]]).to.deep.equal([null, null, null]);
    const back = tupleToMessage(tuple);
    expect(back.embed).to.equal(EMPTY_EMBED);
    expect(back.timeLimit).to.equal(NO_TIME_LIMIT);
    expect(back.extraHeaders).to.equal(NO_EXTRA_HEADERS);
  });
});
