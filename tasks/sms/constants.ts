/**
 * SMS constants, as in the Meiduo tutorial's `verifications/constants.py`.
 */

/** Lifetime of an SMS verification code in Redis, seconds (the text says `300 / 60` = 5 minutes). */
export const SMS_CODE_REDIS_EXPIRES = 300;

/** CCP template id of the verification-code SMS; `'1'` is CCP's built-in test template. */
export const SEND_SMS_TEMPLATE_ID = '1';
