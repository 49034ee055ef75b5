/**
 * The two SMS views of the Meiduo mall (verifications/views.py), without HTTP: each takes what the
 * request carried and returns the status and JSON to answer, so `server.ts` stays a thin adapter.
 *
 * The point of the tutorial: `requestSmsCode` hands the SMS to a Celery task (`sendSmsCode`, which
 * is `ccpSendSmsCode.delay`) and answers as soon as the broker has the message. It never waits for
 * the SMS provider, so the page's 60-s countdown starts at once even when CCP is slow or failing;
 * the worker retries CCP failures on its own.
 */
import { randomInt, timingSafeEqual } from 'node:crypto';
import { SMS_CODE_REDIS_EXPIRES } from '../../tasks/sms/constants.js';
import type { IpRateLimiter } from './limiter.js';
import { sendFlagKey, smsAttemptsKey, smsCodeKey, type ShopStore } from './store.js';

/** Seconds before the same number may ask for another code (Meiduo's SEND_SMS_CODE_INTERVAL). */
export const SEND_SMS_CODE_INTERVAL = 60;

/** Lifetime of a code, seconds: the task's SMS text says "valid for 300 / 60 minutes". */
export const SMS_CODE_EXPIRES = SMS_CODE_REDIS_EXPIRES;

/** Wrong guesses allowed against one code before it is thrown away (a 6-digit code is guessable). */
export const MAX_VERIFY_ATTEMPTS = 5;

/** Mainland China mobile numbers, as Meiduo's URL pattern and forms check them. */
export const MOBILE_PATTERN = /^1[3-9]\d{9}$/;

/** Meiduo's `utils/response_code.py` values that these views use. */
export const RETCODE = {
  OK: '0',
  THROTTLINGERR: '4002',
  NECESSARYPARAMERR: '4003',
  MOBILEERR: '4007',
  SMSCODERR: '4008',
  SERVERERR: '5000',
} as const;

/** What a view answers: an HTTP status, a JSON body and extra headers. */
export interface Reply {
  status: number;
  body: { code: string; errmsg: string; [key: string]: unknown };
  headers?: Record<string, string>;
}

/** What the views need; `server.ts` wires the real ones. */
export interface SmsDeps {
  store: ShopStore;
  /** Per-IP limit of code requests. */
  smsLimiter: IpRateLimiter;
  /** Per-IP limit of verification attempts. */
  verifyLimiter: IpRateLimiter;
  /** Queues the SMS (`ccpSendSmsCode.delay(mobile, code)`); resolves once the broker has it. */
  sendSmsCode(mobile: string, code: string): Promise<unknown>;
  /** Errors worth a line in the server log (never codes). */
  log(line: string): void;
}

const reply = (status: number, code: string, errmsg: string, extra: { body?: Record<string, unknown>; headers?: Record<string, string> } = {}): Reply => ({
  status,
  body: { code, errmsg, ...(extra.body ?? {}) },
  ...(extra.headers ? { headers: extra.headers } : {}),
});

const tooMany = (errmsg: string, retryAfterSec: number): Reply =>
  reply(429, RETCODE.THROTTLINGERR, errmsg, { body: { retry_after: retryAfterSec }, headers: { 'Retry-After': String(retryAfterSec) } });

/** A random 6-digit code, zero-padded (Meiduo: `'%06d' % random.randint(0, 999999)`), from a CSPRNG. */
export function generateSmsCode(): string {
  return String(randomInt(0, 1_000_000)).padStart(6, '0');
}

/**
 * `GET /sms_codes/<mobile>/`. Order of checks: a malformed number is a 400 before anything is
 * counted (fixing a typo must not use up the user's quota); then the per-IP limit; then the
 * per-number flag, set atomically (SET NX) so two simultaneous requests cannot both send.
 */
export async function requestSmsCode(deps: SmsDeps, mobile: string, ip: string): Promise<Reply> {
  if (!MOBILE_PATTERN.test(mobile)) {
    return reply(400, RETCODE.MOBILEERR, 'Invalid mobile number: expected 11 digits starting with 13-19');
  }
  const limit = await deps.smsLimiter.hit(ip);
  if (!limit.allowed) {
    return tooMany(`Too many SMS requests from your address: try again in ${limit.retryAfterSec} s`, limit.retryAfterSec);
  }
  if (!(await deps.store.setIfAbsent(sendFlagKey(mobile), '1', SEND_SMS_CODE_INTERVAL))) {
    // retry_after is an upper bound: the flag was set up to 60 s ago.
    return tooMany('A code was sent to this number less than 60 s ago: please wait before asking again', SEND_SMS_CODE_INTERVAL);
  }

  const code = generateSmsCode();
  try {
    await deps.store.set(smsCodeKey(mobile), code, SMS_CODE_EXPIRES);
    await deps.store.delete(smsAttemptsKey(mobile)); // a new code gets a fresh set of guesses
    // The whole point: queue the SMS and answer. The worker talks to CCP, and retries it.
    await deps.sendSmsCode(mobile, code);
  } catch (err) {
    // Nothing will arrive: let the user ask again at once instead of in 60 s.
    await deps.store.delete(sendFlagKey(mobile)).catch(() => false);
    deps.log(`Could not store or queue the SMS code: ${err instanceof Error ? err.message : String(err)}`);
    return reply(503, RETCODE.SERVERERR, 'The SMS service is unavailable: please try again shortly');
  }
  return reply(200, RETCODE.OK, 'ok');
}

/** `POST /sms_codes/verify` with `{"mobile", "sms_code"}`: 200 for the right code (used up), else 400. */
export async function verifySmsCode(deps: SmsDeps, input: unknown, ip: string): Promise<Reply> {
  const { mobile, sms_code: smsCode } = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
  if (typeof mobile !== 'string' || typeof smsCode !== 'string' || !mobile || !smsCode) {
    return reply(400, RETCODE.NECESSARYPARAMERR, 'Both "mobile" and "sms_code" are required (strings)');
  }
  if (!MOBILE_PATTERN.test(mobile)) return reply(400, RETCODE.MOBILEERR, 'Invalid mobile number');
  const limit = await deps.verifyLimiter.hit(ip);
  if (!limit.allowed) return tooMany(`Too many attempts from your address: try again in ${limit.retryAfterSec} s`, limit.retryAfterSec);

  const stored = await deps.store.get(smsCodeKey(mobile));
  if (stored === null) return reply(400, RETCODE.SMSCODERR, 'The SMS code has expired or was never sent: request a new one');
  if (!sameCode(stored, smsCode)) {
    const { count } = await deps.store.increment(smsAttemptsKey(mobile), SMS_CODE_EXPIRES);
    if (count >= MAX_VERIFY_ATTEMPTS) {
      await deps.store.delete(smsCodeKey(mobile));
      return reply(400, RETCODE.SMSCODERR, 'Wrong SMS code too many times: request a new one');
    }
    return reply(400, RETCODE.SMSCODERR, 'Wrong SMS code');
  }
  // Single use: of two requests racing with the right code, only the one that deletes it wins.
  if (!(await deps.store.delete(smsCodeKey(mobile)))) {
    return reply(400, RETCODE.SMSCODERR, 'The SMS code has expired or was never sent: request a new one');
  }
  await deps.store.delete(smsAttemptsKey(mobile));
  return reply(200, RETCODE.OK, 'ok');
}

/** Constant-time comparison, so response timing does not reveal how many leading digits match. */
function sameCode(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
