/**
 * The per-IP rate limit of the SMS endpoint. The per-number 60-s flag stops one number from being
 * flooded, but not a script walking through many numbers from one machine, each SMS costing the
 * shop money and annoying a stranger: this caps the requests one client address can make.
 *
 * A fixed window per address (`rate_<name>_<ip>`, starting at its first request), counted in the
 * shop's store, so several web processes sharing a Redis share the limit.
 */
import type { ShopStore } from './store.js';

/** At most `max` requests per client address in `windowSec` seconds. */
export interface RateLimit {
  max: number;
  windowSec: number;
}

/** The verdict on one request. */
export interface LimitDecision {
  allowed: boolean;
  /** Seconds until the window ends (for `Retry-After`), at least 1. */
  retryAfterSec: number;
}

export class IpRateLimiter {
  constructor(
    private readonly store: ShopStore,
    /** Distinguishes limits on different endpoints in the store: `sms`, `verify`. */
    readonly name: string,
    readonly limit: RateLimit,
  ) {
    if (!(Number.isInteger(limit.max) && limit.max >= 1)) throw new RangeError(`rate limit max must be an integer >= 1, got ${limit.max}`);
    if (!(limit.windowSec > 0)) throw new RangeError(`rate limit windowSec must be > 0, got ${limit.windowSec}`);
  }

  /** Counts a request from `ip` and says whether it may go on. */
  async hit(ip: string): Promise<LimitDecision> {
    const { count, ttlMs } = await this.store.increment(`rate_${this.name}_${ip}`, this.limit.windowSec);
    return { allowed: count <= this.limit.max, retryAfterSec: Math.max(1, Math.ceil(ttlMs / 1000)) };
  }
}
