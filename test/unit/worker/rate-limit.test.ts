import { expect } from 'chai';
import { InvalidRateLimit } from '../../../src/errors.js';
import { parseRate, RateLimiter, TokenBucket } from '../../../src/worker/rate-limit.js';
import type { PoolJob } from '../../../src/worker/pool.js';

describe('rate limits', () => {
  it("parses Celery's rate strings into tasks per second", () => {
    expect(parseRate('10/s')).to.equal(10);
    expect(parseRate('120/m')).to.equal(2);
    expect(parseRate('3600/h')).to.equal(1);
    expect(parseRate('5')).to.equal(5);
    expect(parseRate(0.5)).to.equal(0.5);
    expect(parseRate(null)).to.equal(0);
    expect(parseRate('')).to.equal(0);
  });

  it("rejects what Python's rate() rejects, with Python's error for remote replies", () => {
    const e1 = (() => { try { parseRate('ten/s'); } catch (e) { return e; } })() as InvalidRateLimit;
    expect(e1).to.be.instanceOf(InvalidRateLimit);
    expect(e1.pythonError).to.equal(`ValueError("could not convert string to float: 'ten'")`);
    const e2 = (() => { try { parseRate('10/d'); } catch (e) { return e; } })() as InvalidRateLimit;
    expect(e2.pythonError).to.equal("KeyError('d')");
    expect(() => parseRate(-1)).to.throw(InvalidRateLimit);
  });

  it('a token bucket of capacity 1 gives one token at once, the next after 1/rate seconds', () => {
    let now = 100;
    const b = new TokenBucket(2, 1, () => now);
    expect(b.canConsume()).to.equal(true);
    expect(b.canConsume()).to.equal(false);
    expect(b.expectedTime()).to.be.closeTo(0.5, 1e-9);
    now += 0.5;
    expect(b.canConsume()).to.equal(true);
    now += 10; // idle time at capacity is not saved up
    expect(b.canConsume()).to.equal(true);
    expect(b.canConsume()).to.equal(false);
  });

  it('the limiter starts one job per token, in order, and releases everything when the limit is lifted', async () => {
    const started: number[] = [];
    const job = (n: number): PoolJob => ({ run: async () => { started.push(n); }, cancel: () => undefined });
    const limiter = new RateLimiter((j) => void j.run());
    for (let i = 0; i < 4; i++) limiter.submit('t', '20/s', job(i));
    expect(started).to.deep.equal([0]);
    expect(limiter.waiting).to.equal(3);
    await new Promise((r) => setTimeout(r, 60));
    expect(started).to.deep.equal([0, 1]);
    limiter.setRate('t', 0);
    expect(started).to.deep.equal([0, 1, 2, 3]);
    expect(limiter.waiting).to.equal(0);
  });

  it('cancelAll() gives waiting jobs back, and a disabled limiter never waits', () => {
    let cancelled = 0;
    const limiter = new RateLimiter(() => undefined);
    const job: PoolJob = { run: async () => undefined, cancel: () => void cancelled++ };
    limiter.submit('t', '1/h', job);
    limiter.submit('t', '1/h', job);
    expect(limiter.cancelAll()).to.equal(1);
    expect(cancelled).to.equal(1);
    let ran = 0;
    const off = new RateLimiter(() => void ran++, true);
    off.submit('t', '1/h', job);
    off.submit('t', '1/h', job);
    expect(ran).to.equal(2);
  });
});
