/**
 * The beat lease and its fenced schedule state, against real Redis (DB 12):
 * one holder at a time, renewals, a holder that lost the lease can no longer
 * record runs (so it sends none), and a clean release hands over at once.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { leaseKeys, RedisLease, RedisStore } from '../../src/beat/lease.js';
import { uniqueName } from '../helpers/services.js';

const REDIS_URL = 'redis://127.0.0.1:6379/12';

describe('beat lease in Redis (SET NX PX, renewed, fenced)', function () {
  this.timeout(20_000);
  let a: Redis;
  let b: Redis;
  let prefix: string;

  beforeEach(() => {
    a = new Redis(REDIS_URL);
    b = new Redis(REDIS_URL);
    prefix = uniqueName('test:beat-lease');
  });
  afterEach(async () => {
    const keys = leaseKeys(prefix);
    await a.del(keys.lease, keys.fence, keys.state);
    a.disconnect();
    b.disconnect();
  });

  const run = (name: string, at: number) => [name, { lastRunAt: at, totalRunCount: 1 }] as const;

  it('has one holder at a time; each acquisition gets a larger fencing token', async () => {
    const first = new RedisLease(a, leaseKeys(prefix), 1_000, 'beat-a');
    const second = new RedisLease(b, leaseKeys(prefix), 1_000, 'beat-b');
    expect(await first.tryAcquire()).to.equal(true);
    expect(await second.tryAcquire()).to.equal(false);
    expect(await second.current()).to.equal(`${first.token} beat-a`);
    expect(await first.renew()).to.equal(true);
    expect(await a.pttl(prefix)).to.be.within(900, 1_000);
    await first.release();
    expect(await second.tryAcquire()).to.equal(true); // a clean release hands over at once
    expect(second.token).to.be.greaterThan(1);
  });

  it('a holder whose lease expired cannot record runs, so it sends none; the new holder can', async () => {
    const stale = new RedisLease(a, leaseKeys(prefix), 300, 'beat-a');
    const fresh = new RedisLease(b, leaseKeys(prefix), 5_000, 'beat-b');
    const staleStore = new RedisStore(stale, 'a');
    const freshStore = new RedisStore(fresh, 'b');
    expect(await stale.tryAcquire()).to.equal(true);
    expect(await staleStore.save({ timezone: 'UTC', utcEnabled: true, entries: { e: { lastRunAt: 1, totalRunCount: 0 } } })).to.equal(true);
    expect(await staleStore.record([run('e', 1000)])).to.equal(true);

    await new Promise((r) => setTimeout(r, 400)); // "paused" past its ttl
    expect(await fresh.tryAcquire()).to.equal(true);
    expect(fresh.token).to.be.greaterThan(stale.token!);

    // The stale holder still believes it holds the lease: the fence refuses it.
    expect(await staleStore.record([run('e', 2000)])).to.equal(false);
    expect(await stale.renew()).to.equal(false);
    expect(stale.token).to.equal(null);

    // The new holder sees exactly what the old one recorded, and continues from it.
    const loaded = await freshStore.load();
    expect(loaded).to.deep.equal({ timezone: 'UTC', utcEnabled: true, entries: { e: { lastRunAt: 1000, totalRunCount: 1 } } });
    expect(await freshStore.record([run('e', 3000)])).to.equal(true);
    expect((await freshStore.load())!.entries.e!.lastRunAt).to.equal(3000);
    await fresh.release();
  });

  it('release by a holder that lost the lease leaves the new holder\'s lease alone', async () => {
    const old = new RedisLease(a, leaseKeys(prefix), 200, 'beat-a');
    const now = new RedisLease(b, leaseKeys(prefix), 5_000, 'beat-b');
    expect(await old.tryAcquire()).to.equal(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(await now.tryAcquire()).to.equal(true);
    await old.release();
    expect(await now.current()).to.equal(`${now.token} beat-b`);
  });
});
