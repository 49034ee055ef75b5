/**
 * The SMS task of the Meiduo tutorial (celery_tasks/sms/tasks.py): sends the verification code
 * through CCP, off the request path, retrying with backoff when CCP fails.
 *
 *   ccpSendSmsCode.delay(mobile, smsCode)   // Python: ccp_send_sms_code.delay(mobile, sms_code)
 */
import { getLogger } from 'ts-celery';
import { app } from '../main.js';
import { ccpFromEnv } from './ccp.js';
import { SEND_SMS_TEMPLATE_ID, SMS_CODE_REDIS_EXPIRES } from './constants.js';

const logger = getLogger('tasks.sms.tasks');

/** CCP answered, but refused the SMS (a statusCode other than 000000). */
export class SmsSendError extends Error {
  override readonly name = 'SmsSendError';
}

/**
 * Sends the SMS verification code `smsCode` to `mobile`; resolves to 0 (CCP accepted it).
 *
 * name: the name Python producers use. retryBackoff: the n-th retry waits 3 × 2^(n-1) s
 * (3 s, 6 s, 12 s). maxRetries: after three retries the task fails with the last error.
 * params: the Python task's parameter names, so `kwargs={'mobile': ..., 'sms_code': ...}` from a
 * Python caller land on the right arguments.
 */
export const ccpSendSmsCode = app.task(
  { name: 'ccp_send_sms_code', bind: true, retryBackoff: 3, maxRetries: 3, params: ['mobile', 'sms_code'] },
  async (self, mobile: string, smsCode: string) => {
    let sendRet: number;
    try {
      // A client per run, so that CCP_* set in the worker's environment at run time apply.
      sendRet = await ccpFromEnv().sendTemplateSms(
        mobile,
        [smsCode, String(SMS_CODE_REDIS_EXPIRES / 60)],
        SEND_SMS_TEMPLATE_ID,
        { signal: self.signal },
      );
    } catch (err) {
      // CcpError messages carry no credentials, so the error can be logged as it is.
      logger.error(err);
      return self.retry({ exc: err });
    }
    if (sendRet !== 0) {
      return self.retry({ exc: new SmsSendError('发送短信失败') });
    }
    return sendRet;
  },
);
