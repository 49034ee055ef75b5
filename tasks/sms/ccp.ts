/**
 * Client for the CCP template-SMS REST API (Ronglian Cloud, 容联云通讯, formerly yuntongxun):
 * the `CCP().send_template_sms(mobile, [code, minutes], template_id)` of the Meiduo tutorial.
 *
 *   POST {baseUrl}/2013-12-26/Accounts/{accountSid}/SMS/TemplateSMS?sig={SIG}
 *   SIG           = upper-case hex MD5(accountSid + authToken + timestamp)
 *   Authorization = base64(accountSid + ":" + timestamp)
 *   timestamp     = local time, yyyyMMddHHmmss
 *   body          = {"to", "appId", "templateId", "datas": [strings]}
 *   answer        = {"statusCode": "000000", "templateSMS": {...}}; any other statusCode is a refusal
 *
 * Configuration comes from the environment (`ccpFromEnv()`):
 *
 *   CCP_BASE_URL     default https://app.cloopen.com:8883 (CCP's REST address; test accounts use it
 *                    as their sandbox). Point it at `npx tsx scripts/fake-ccp.ts` for local runs.
 *   CCP_ACCOUNT_SID  default: CCP_DEMO_CREDENTIALS, fake values that only the fake gateway accepts
 *   CCP_AUTH_TOKEN   default: idem
 *   CCP_APP_ID       default: idem
 *   CCP_TIMEOUT_MS   default 10000; a slower answer throws CcpError('timeout')
 *
 * The auth token is a secret: it is kept in a private field (so logging the client does not show
 * it) and never appears in error messages; neither does the account SID or the signature.
 */
import { createHash } from 'node:crypto';

/** The REST API version in the URL; CCP has kept it since 2013. */
const SOFT_VERSION = '2013-12-26';

/** `statusCode` of an accepted request. */
export const CCP_STATUS_OK = '000000';

/**
 * Fake credentials for local runs: what `ccpFromEnv()` uses when the CCP_* variables are unset, and
 * what `scripts/fake-ccp.ts` accepts by default. The real CCP rejects them.
 */
export const CCP_DEMO_CREDENTIALS = Object.freeze({
  accountSid: 'fake0account0sid0for0local0demo0',
  authToken: 'fake0auth0token0not0a0secret0000',
  appId: 'fake0app0id0for0local0demo000000',
});

/** Default `baseUrl`: CCP's REST address. */
export const CCP_DEFAULT_BASE_URL = 'https://app.cloopen.com:8883';

/** Default request timeout, milliseconds. */
export const CCP_DEFAULT_TIMEOUT_MS = 10_000;

/** How to reach CCP and as whom. */
export interface CcpOptions {
  /** Scheme, host and port of the REST API (a path prefix is kept), e.g. `http://127.0.0.1:8883`. */
  baseUrl?: string;
  accountSid: string;
  authToken: string;
  appId: string;
  /** Give up after this many milliseconds (default 10 000). */
  timeoutMs?: number;
  /** Clock for the request timestamp (tests pin it). */
  now?: () => Date;
}

/** CCP's answer. `templateSMS` comes with success, `statusMsg` usually with a refusal. */
export interface CcpResponse {
  statusCode: string;
  statusMsg?: string;
  templateSMS?: { smsMessageSid?: string; dateCreated?: string };
  [key: string]: unknown;
}

/** Per-call options. */
export interface CcpSendOptions {
  /** Aborts the request, e.g. the task's `self.signal` (soft time limit, cold shutdown). */
  signal?: AbortSignal;
}

/** Why a request produced no CCP answer. */
export type CcpErrorKind = 'config' | 'network' | 'timeout' | 'aborted' | 'http' | 'bad-response';

/**
 * The request got no usable CCP answer (network error, timeout, 3xx/5xx, not JSON) or the client is
 * misconfigured. A CCP refusal (`statusCode` other than 000000) is not an error: see `send()`.
 * Messages never contain the auth token, the account SID or the signature.
 */
export class CcpError extends Error {
  override readonly name = 'CcpError';
  constructor(
    message: string,
    readonly kind: CcpErrorKind,
    /** HTTP status of the answer, when there was one. */
    readonly httpStatus: number | null = null,
    /** Low-level error code (ECONNREFUSED, ...) or CCP statusCode, when known. */
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** `yyyyMMddHHmmss` in local time, as CCP's SDKs send it. */
export function ccpTimestamp(d: Date): string {
  return (
    `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}` +
    `${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`
  );
}

/** The CCP template-SMS client. */
export class CcpClient {
  /** Origin (plus path prefix) of the API, without credentials: safe to show. */
  readonly baseUrl: string;
  readonly appId: string;
  readonly timeoutMs: number;
  readonly #accountSid: string;
  readonly #authToken: string;
  readonly #now: () => Date;

  constructor(options: CcpOptions) {
    this.baseUrl = parseBaseUrl(options.baseUrl ?? CCP_DEFAULT_BASE_URL);
    for (const [key, env] of [['accountSid', 'CCP_ACCOUNT_SID'], ['authToken', 'CCP_AUTH_TOKEN'], ['appId', 'CCP_APP_ID']] as const) {
      if (!options[key]) throw new CcpError(`CCP ${key} is empty: set ${env} (or pass ${key} to CcpClient)`, 'config');
    }
    const timeoutMs = options.timeoutMs ?? CCP_DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new CcpError(`CCP timeout must be a positive number of milliseconds, got ${timeoutMs}: check CCP_TIMEOUT_MS`, 'config');
    }
    this.appId = options.appId;
    this.timeoutMs = timeoutMs;
    this.#accountSid = options.accountSid;
    this.#authToken = options.authToken;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Sends a template SMS, like the tutorial's `send_template_sms`: 0 when CCP accepted it, -1 when
   * CCP answered with another statusCode. Throws CcpError when there was no usable answer.
   */
  async sendTemplateSms(to: string, datas: ReadonlyArray<string | number>, templateId: string | number, options: CcpSendOptions = {}): Promise<0 | -1> {
    const answer = await this.send(to, datas, templateId, options);
    return answer.statusCode === CCP_STATUS_OK ? 0 : -1;
  }

  /** Sends a template SMS and returns CCP's whole answer (check `statusCode`). Throws CcpError like `sendTemplateSms`. */
  async send(to: string, datas: ReadonlyArray<string | number>, templateId: string | number, options: CcpSendOptions = {}): Promise<CcpResponse> {
    const timestamp = ccpTimestamp(this.#now());
    const sig = createHash('md5').update(this.#accountSid + this.#authToken + timestamp, 'utf8').digest('hex').toUpperCase();
    const url = `${this.baseUrl}/${SOFT_VERSION}/Accounts/${encodeURIComponent(this.#accountSid)}/SMS/TemplateSMS?sig=${sig}`;
    // CCP's SDKs send datas as strings ("%s" formatting), so the minutes count becomes "5".
    const body = JSON.stringify({ to, appId: this.appId, templateId: String(templateId), datas: datas.map(String) });

    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    const where = `CCP at ${this.baseUrl}`;
    let status: number;
    let text: string;
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: {
          Accept: 'application/json',
          'Content-Type': 'application/json;charset=utf-8',
          Authorization: Buffer.from(`${this.#accountSid}:${timestamp}`, 'utf8').toString('base64'),
        },
        body,
        signal,
        // A redirect would replay the signed request elsewhere; CCP never redirects.
        redirect: 'manual',
      });
      status = response.status;
      text = await response.text();
    } catch (err) {
      if (timeout.aborted) {
        throw new CcpError(`${where} did not answer within ${this.timeoutMs} ms: is it up? (CCP_TIMEOUT_MS sets the limit)`, 'timeout');
      }
      if (options.signal?.aborted) throw new CcpError(`Request to ${where} aborted by the caller`, 'aborted');
      const code = networkCode(err);
      const detail = this.#redact(networkMessage(err));
      throw new CcpError(`Could not reach ${where} (${detail}): is CCP_BASE_URL right and the gateway running?`, 'network', null, code);
    }

    if (status >= 300 && status < 400) {
      throw new CcpError(`${where} answered HTTP ${status} (a redirect): CCP_BASE_URL should be the API's own address`, 'http', status);
    }
    if (status >= 500) {
      throw new CcpError(`${where} answered HTTP ${status}: the gateway failed; try again later`, 'http', status);
    }
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch {
      throw new CcpError(`${where} answered HTTP ${status} with a body that is not JSON: is CCP_BASE_URL a CCP REST address?`, 'bad-response', status);
    }
    if (typeof answer !== 'object' || answer === null || typeof (answer as CcpResponse).statusCode !== 'string') {
      throw new CcpError(`${where} answered HTTP ${status} with JSON that has no statusCode: is CCP_BASE_URL a CCP REST address?`, 'bad-response', status);
    }
    return answer as CcpResponse;
  }

  /** Removes anything secret from text that came from outside (error messages of lower layers). */
  #redact(text: string): string {
    let out = text;
    for (const secret of [this.#authToken, this.#accountSid]) out = out.split(secret).join('***');
    return out.replace(/sig=[0-9A-Fa-f]+/g, 'sig=***');
  }
}

/**
 * A client configured from CCP_BASE_URL, CCP_ACCOUNT_SID, CCP_AUTH_TOKEN, CCP_APP_ID and
 * CCP_TIMEOUT_MS (see the top of this file for defaults). Reads `env` at each call, so a client made
 * per task run follows the environment of the running worker.
 */
export function ccpFromEnv(env: NodeJS.ProcessEnv = process.env): CcpClient {
  const timeout = env.CCP_TIMEOUT_MS;
  return new CcpClient({
    baseUrl: env.CCP_BASE_URL || CCP_DEFAULT_BASE_URL,
    accountSid: env.CCP_ACCOUNT_SID || CCP_DEMO_CREDENTIALS.accountSid,
    authToken: env.CCP_AUTH_TOKEN || CCP_DEMO_CREDENTIALS.authToken,
    appId: env.CCP_APP_ID || CCP_DEMO_CREDENTIALS.appId,
    timeoutMs: timeout ? Number(timeout) : CCP_DEFAULT_TIMEOUT_MS,
  });
}

/** Validates the base URL and drops credentials, query and trailing slashes. */
function parseBaseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CcpError('CCP_BASE_URL is not a URL: use e.g. https://app.cloopen.com:8883 or http://127.0.0.1:8883', 'config');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CcpError(`CCP_BASE_URL must be http:// or https://, got ${url.protocol}`, 'config');
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/**
 * The low-level error behind fetch's `TypeError: fetch failed`: its `cause`, or the first of an
 * AggregateError's errors (a host name that resolves to several addresses).
 */
function rootCause(err: unknown): unknown {
  const cause = (err as { cause?: unknown } | null)?.cause;
  if (cause instanceof AggregateError && cause.errors.length > 0) return cause.errors[0];
  return cause;
}

/** `ECONNREFUSED` and friends. */
function networkCode(err: unknown): string | null {
  const code = (rootCause(err) as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : null;
}

function networkMessage(err: unknown): string {
  const cause = rootCause(err);
  if (cause instanceof Error && cause.message) return cause.message;
  return err instanceof Error ? err.message : String(err);
}
