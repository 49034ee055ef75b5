import { expect } from 'chai';
import { Celery, chain, chord, group, GroupResult, TaskError, Worker } from '../../../src/index.js';
import { setLogLevel } from '../../../src/support/log.js';

/** Canvases end to end on the embedded broker and backend: one process, no services. */
describe('canvas on the memory broker', () => {
  const app = new Celery('canvas-mem', { broker_url: 'memory://' });
  const add = app.task({ name: 'add' }, (x: number, y: number) => x + y);
  const mul = app.task({ name: 'mul' }, (x: number, y: number) => x * y);
  const tsum = app.task({ name: 'tsum' }, (nums: number[]) => nums.reduce((a, b) => a + b, 0));
  const fail = app.task({ name: 'fail' }, (msg: string) => {
    throw new RangeError(msg);
  });
  const errbackRuns: string[] = [];
  const onError = app.task({ name: 'on_error' }, (taskId: string) => {
    errbackRuns.push(taskId);
    return taskId;
  });
  const inline: Array<[string, string, boolean]> = [];
  const onErrorNew = app.task({ name: 'on_error_new' }, (request: { id: string }, exc: Error, traceback: string | null) => {
    inline.push([request.id, exc.message, typeof traceback === 'string']);
  });
  const ids = app.task({ name: 'ids', bind: true }, (self, i: number) => [self.request.rootId, self.request.parentId, i]);
  const replaced = app.task({ name: 'add_replaced', bind: true }, (self, x: number, y: number) => self.replace(add.s(x, y)));
  const toAll = app.task({ name: 'add_to_all', bind: true }, (self, nums: number[], val: number) => self.replace(group(nums.map((n) => add.s(n, val)))));
  let worker: Worker;

  before(async () => {
    setLogLevel('critical');
    worker = new Worker(app, { hostname: 'canvas@mem', concurrency: 8 });
    await worker.start();
  });
  after(async () => {
    await worker.stop();
    await app.close();
    setLogLevel('warning');
  });

  it('a chain passes each result on, and resolves with the last', async () => {
    const r = await chain(add.s(2, 2), mul.s(4), add.s(1)).applyAsync();
    expect(await r.get({ timeout: 2000 })).to.equal(17);
    expect(await (r.parent as typeof r).get({ timeout: 2000 })).to.equal(16);
  });

  it('a group resolves with its results in order', async () => {
    const g = await group([add.s(1, 1), add.s(2, 2), mul.s(3, 3)]).applyAsync();
    expect(g).to.be.instanceOf(GroupResult);
    expect(await g.get({ timeout: 2000 })).to.deep.equal([2, 4, 9]);
    expect(await g.completedCount()).to.equal(3);
    expect(await g.ready()).to.equal(true);
  });

  it('a chord calls its body once with the header results in header order', async () => {
    const r = await chord([add.s(1, 1), add.s(2, 2), add.s(3, 3)], tsum.s()).applyAsync();
    expect(await r.get({ timeout: 2000 })).to.equal(12);
    expect(r.parent).to.be.instanceOf(GroupResult);
  });

  it('a chain with a group in the middle becomes a chord', async () => {
    const r = await chain(add.s(1, 1), group(add.s(10), add.s(20)), tsum.s(), add.s(100)).applyAsync();
    expect(await r.get({ timeout: 2000 })).to.equal(134);
  });

  it('an empty chord header calls the body with []', async () => {
    const r = await chord([], tsum.s()).applyAsync();
    expect(await r.get({ timeout: 2000 })).to.equal(0);
  });

  it('a failing header member: the body never runs, the chord result rejects with the member error, and its errback runs', async () => {
    const body = tsum.s().onError(onError.s());
    const r = await chord([add.s(1, 1), fail.s('header failed')], body).applyAsync();
    const err = await r.get({ timeout: 2000 }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(TaskError);
    expect(err).to.deep.include({ excType: 'RangeError', excMessage: 'header failed' });
    const own = await r.get({ timeout: 2000, followParents: false }).catch((e: unknown) => e);
    expect(own).to.deep.include({ excType: 'ChordError' });
    expect((own as TaskError).excMessage).to.match(/^Dependency .+ raised RangeError\('header failed'\)$/);
    const deadline = Date.now() + 2000;
    while (!errbackRuns.includes(r.id) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    expect(errbackRuns).to.include(r.id);
  });

  it('an errback taking (request, exc, traceback) is called inline, as Celery calls new-style errbacks', async () => {
    const r = await fail.s('inline please').onError(onErrorNew.s()).applyAsync();
    await r.get({ timeout: 2000 }).catch(() => undefined);
    const deadline = Date.now() + 2000;
    while (!inline.some(([id]) => id === r.id) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    expect(inline.find(([id]) => id === r.id)).to.deep.equal([r.id, 'inline please', true]);
  });

  it('a failed chain step fails the later steps, so waiting on the chain ends', async () => {
    const r = await chain(add.s(1, 1), fail.si('step failed'), add.s(5)).applyAsync();
    const err = await r.get({ timeout: 2000 }).catch((e: unknown) => e);
    expect(err).to.deep.include({ excType: 'RangeError' });
    expect(await r.state()).to.equal('FAILURE');
  });

  it('sets root and parent ids along a chain', async () => {
    const r = await chain(ids.si(1), ids.si(2)).applyAsync();
    const [root, parent, i] = (await r.get({ timeout: 2000 })) as [string, string, number];
    expect(i).to.equal(2);
    expect(parent).to.equal((r.parent as typeof r).id);
    expect(root).to.equal((r.parent as typeof r).id);
  });

  it('self.replace() hands the task id to the replacement', async () => {
    const r = await replaced.delay(40, 2);
    expect(await r.get({ timeout: 2000 })).to.equal(42);
  });

  it('self.replace() with a group resolves with the group results', async () => {
    const r = await toAll.delay([1, 2, 3], 10);
    expect(await r.get({ timeout: 2000 })).to.deep.equal([11, 12, 13]);
  });

  it('starmap, map and chunks run the task over their items', async () => {
    expect(await (await add.starmap([[1, 2], [3, 4]]).applyAsync()).get({ timeout: 2000 })).to.deep.equal([3, 7]);
    expect(await (await tsum.map([[1, 2], [3]]).applyAsync()).get({ timeout: 2000 })).to.deep.equal([3, 3]);
    const chunks = await add.chunks([[1, 1], [2, 2], [3, 3]], 2).applyAsync();
    expect(await chunks.get({ timeout: 2000 })).to.deep.equal([[2, 4], [6]]);
  });

  it('GroupResult.save() and restore()', async () => {
    const g = await group(add.s(1, 2), add.s(3, 4)).applyAsync();
    await g.save();
    const back = await GroupResult.restore(app, g.id);
    expect(back?.results.map((r) => r.id)).to.deep.equal(g.results.map((r) => r.id));
    expect(await back!.get({ timeout: 2000 })).to.deep.equal([3, 7]);
  });

  it('rejects a group link with Celery\'s advice', async () => {
    const err = await group(add.s(1, 1)).applyAsync([], {}, { link: add.s(1) }).catch((e: unknown) => e);
    expect(String(err)).to.match(/Cannot add link to group: use a chord/);
  });

  it('an unknown option name is an error suggesting the right one', () => {
    expect(() => add.s(1, 1).set({ countdonw: 3 })).to.throw(/did you mean "countdown"/);
  });
});
