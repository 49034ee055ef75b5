/**
 * The CCP client against the fake CCP gateway, over real HTTP on 127.0.0.1. The signature,
 * Authorization header and body are recomputed here from the CCP documentation, independently of
 * both the client and the fake.
 */
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { startFakeCcp, type FakeCcp } from '../../scripts/fake-ccp.js';
import { CcpClient, CcpError, ccpFromEnv, type CcpOptions } from '../../tasks/sms/ccp.js';

// Not the demo values: the client and the fake must agree on whatever they are given.
const CREDS = {
  accountSid: `sid${randomBytes(14).toString('hex')}`,
  authToken: `tok${randomBytes(14).toString('hex')}`,
  appId: `app${randomBytes(14).toString('hex')}`,
};
const MOBILE = '13800138000';

const two = (n: number): string => String(n).padStart(2, '0');
const localStamp = (d: Date): string =>
  `${d.getFullYear()}${two(d.getMonth() + 1)}${two(d.getDate())}${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}`;
const md5Upper = (s: string): string => createHash('md5').update(s).digest('hex').toUpperCase();

/** A port nothing listens on: bind one, then close it. */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Awaits `p`, expecting a CcpError, and returns it. */
async function ccpError(p: Promise<unknown>): Promise<CcpError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(CcpError);
    return err as CcpError;
  }
  expect.fail('expected a CcpError');
}

describe('CCP client <-> fake CCP gateway (integration)', () => {
  let fake: FakeCcp;
  // Every error the client throws in these tests: none may show a credential.
  const errors: CcpError[] = [];
  const client = (over: Partial<CcpOptions> = {}): CcpClient => new CcpClient({ ...CREDS, baseUrl: fake.url, ...over });
  const expectError = async (p: Promise<unknown>): Promise<CcpError> => {
    const err = await ccpError(p);
    errors.push(err);
    return err;
  };

  before(async () => {
    fake = await startFakeCcp(CREDS);
  });
  beforeEach(() => {
    fake.reset();
    fake.setBehaviour({ latencyMs: 0, failureRate: 0, failNext: 0, failureMode: 'status' });
  });
  afterEach(async () => {
    // A request the client gave up on (timeout, abort) is still answered, and counted, by the fake,
    // as a real gateway would; wait for it so it does not land in the next test's counters.
    for (let i = 0; i < 100 && fake.requests().some((r) => r.outcome === 'pending'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
  after(async () => {
    await fake?.close();
  });

  it('signs the request as CCP documents: sig in the URL, Authorization, headers and JSON body', async () => {
    const at = new Date();
    const ret = await client({ now: () => at }).sendTemplateSms(MOBILE, ['123456', 5], '1');
    expect(ret).to.equal(0);

    const stamp = localStamp(at);
    const [seen] = fake.requests();
    expect(seen).to.include({
      method: 'POST',
      path: `/2013-12-26/Accounts/${CREDS.accountSid}/SMS/TemplateSMS`,
      sig: md5Upper(CREDS.accountSid + CREDS.authToken + stamp),
      authorization: Buffer.from(`${CREDS.accountSid}:${stamp}`).toString('base64'),
      accept: 'application/json',
      contentType: 'application/json;charset=utf-8',
      outcome: 'delivered',
      statusCode: '000000',
    });
    expect(seen!.sig).to.match(/^[0-9A-F]{32}$/);
    // The minutes go out as a string, as CCP's SDKs format them.
    expect(seen!.body).to.deep.equal({ to: MOBILE, appId: CREDS.appId, templateId: '1', datas: ['123456', '5'] });
  });

  it('delivers with the real clock: the SMS lands in /outbox, and DELETE /outbox clears it', async () => {
    const before = Date.now();
    const answer = await client().send(MOBILE, ['654321', '5'], 1);
    expect(answer.statusCode).to.equal('000000');
    expect(answer.templateSMS?.smsMessageSid).to.match(/^[0-9a-f]{32}$/);

    const outbox = (await (await fetch(`${fake.url}/outbox`)).json()) as Array<Record<string, unknown>>;
    expect(outbox).to.have.length(1);
    expect(outbox[0]).to.include({ to: MOBILE, templateId: '1' });
    expect(outbox[0]!.datas).to.deep.equal(['654321', '5']);
    expect(new Date(outbox[0]!.at as string).toISOString()).to.equal(outbox[0]!.at);
    expect(Date.parse(outbox[0]!.at as string)).to.be.within(before, Date.now());
    expect(await (await fetch(`${fake.url}/stats`)).json()).to.deep.equal({ requests: 1, delivered: 1, failed: 0, rejected: 0 });

    expect((await fetch(`${fake.url}/outbox`, { method: 'DELETE' })).status).to.equal(200);
    expect(fake.outbox()).to.deep.equal([]);
  });

  it('returns -1 when the gateway answers with another statusCode', async () => {
    fake.setBehaviour({ failNext: 1, failureMode: 'status' });
    expect(await client().send(MOBILE, ['1'], '1')).to.deep.equal({ statusCode: '160050', statusMsg: '短信发送失败' });
    fake.setBehaviour({ failNext: 1 });
    expect(await client().sendTemplateSms(MOBILE, ['1'], '1')).to.equal(-1);
    expect(fake.outbox()).to.deep.equal([]);
    expect(fake.stats()).to.deep.equal({ requests: 2, delivered: 0, failed: 2, rejected: 0 });
  });

  it('fails exactly failNext requests (set over POST /control), then delivers again', async () => {
    const res = await fetch(`${fake.url}/control`, { method: 'POST', body: JSON.stringify({ failNext: 2 }) });
    expect(await res.json()).to.include({ failNext: 2 });
    const c = client();
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await c.sendTemplateSms(MOBILE, [String(i)], '1'));
    expect(results).to.deep.equal([-1, -1, 0]);
    expect(fake.outbox().map((e) => e.datas)).to.deep.equal([['2']]);
    expect(fake.behaviour().failNext).to.equal(0);
  });

  it('refuses bad behaviour changes with HTTP 400', async () => {
    const res = await fetch(`${fake.url}/control`, { method: 'POST', body: JSON.stringify({ failureRate: 2 }) });
    expect(res.status).to.equal(400);
    expect(((await res.json()) as { error: string }).error).to.match(/failureRate/);
  });

  it('throws CcpError(http, 500) when the gateway answers HTTP 500', async () => {
    fake.setBehaviour({ failNext: 1, failureMode: 'http500' });
    const err = await expectError(client().sendTemplateSms(MOBILE, ['1'], '1'));
    expect(err).to.include({ kind: 'http', httpStatus: 500 });
    expect(err.message).to.match(/HTTP 500/);
    expect(fake.stats().failed).to.equal(1);
  });

  it('mixes both failure kinds in failureMode "mixed"', async () => {
    fake.setBehaviour({ failureRate: 1, failureMode: 'mixed' });
    const kinds = new Set<string>();
    for (let i = 0; i < 24; i++) {
      kinds.add(await client().sendTemplateSms(MOBILE, ['1'], '1').then(String, (e: CcpError) => e.kind));
    }
    expect([...kinds].sort()).to.deep.equal(['-1', 'http']);
  });

  it('throws CcpError(network) when nothing listens on the port', async () => {
    const port = await closedPort();
    const err = await expectError(client({ baseUrl: `http://127.0.0.1:${port}` }).sendTemplateSms(MOBILE, ['1'], '1'));
    expect(err).to.include({ kind: 'network', code: 'ECONNREFUSED', httpStatus: null });
    expect(err.message).to.include(`127.0.0.1:${port}`);
  });

  it('throws CcpError(timeout) when the gateway is slower than timeoutMs', async () => {
    fake.setBehaviour({ latencyMs: 600 });
    const started = Date.now();
    const err = await expectError(client({ timeoutMs: 150 }).sendTemplateSms(MOBILE, ['1'], '1'));
    expect(err.kind).to.equal('timeout');
    expect(Date.now() - started).to.be.below(500);
  });

  it('throws CcpError(aborted) when the caller aborts (the task signal)', async () => {
    fake.setBehaviour({ latencyMs: 600 });
    const err = await expectError(client().sendTemplateSms(MOBILE, ['1'], '1', { signal: AbortSignal.timeout(100) }));
    expect(err.kind).to.equal('aborted');
  });

  it('throws CcpError(bad-response) for answers that are not CCP JSON', async () => {
    // The fake's 404 for an unknown path: JSON, but without a statusCode.
    const notCcp = await expectError(client({ baseUrl: `${fake.url}/not-ccp` }).sendTemplateSms(MOBILE, ['1'], '1'));
    expect(notCcp).to.include({ kind: 'bad-response', httpStatus: 404 });

    // A server answering HTML with 200, like a captive portal.
    const html = createHttpServer((_req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html>hello</html>'));
    await new Promise<void>((resolve) => html.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = html.address() as AddressInfo;
      const err = await expectError(client({ baseUrl: `http://127.0.0.1:${port}` }).sendTemplateSms(MOBILE, ['1'], '1'));
      expect(err).to.include({ kind: 'bad-response', httpStatus: 200 });
      expect(err.message).to.match(/not JSON/);
    } finally {
      html.closeAllConnections();
      await new Promise((resolve) => html.close(resolve));
    }
  });

  it('is refused by the gateway with a wrong token (111109), a wrong account (111141) or a wrong app (111181)', async () => {
    const wrongToken = await client({ authToken: 'not-the-token' }).send(MOBILE, ['1'], '1');
    expect(wrongToken.statusCode).to.equal('111109');
    expect(await client({ authToken: 'not-the-token' }).sendTemplateSms(MOBILE, ['1'], '1')).to.equal(-1);
    expect((await client({ accountSid: 'someone-else' }).send(MOBILE, ['1'], '1')).statusCode).to.equal('111141');
    expect((await client({ appId: 'another-app' }).send(MOBILE, ['1'], '1')).statusCode).to.equal('111181');
    expect(fake.stats()).to.deep.equal({ requests: 4, delivered: 0, failed: 0, rejected: 4 });
    expect(fake.outbox()).to.deep.equal([]);
  });

  it('is refused with a timestamp far from the gateway clock (111106) and a bad phone number (160042)', async () => {
    const old = new Date(Date.now() - 3 * 3600_000);
    expect((await client({ now: () => old }).send(MOBILE, ['1'], '1')).statusCode).to.equal('111106');
    expect((await client().send('not-a-phone', ['1'], '1')).statusCode).to.equal('160042');
  });

  it('logs each request with the time it arrived (GET /requests), before latency', async () => {
    fake.setBehaviour({ latencyMs: 200 });
    await client().sendTemplateSms(MOBILE, ['1'], '1');
    const log = (await (await fetch(`${fake.url}/requests`)).json()) as Array<{ at: string; answeredAt: string }>;
    expect(log).to.have.length(1);
    expect(Date.parse(log[0]!.answeredAt) - Date.parse(log[0]!.at)).to.be.at.least(190);
  });

  it('ccpFromEnv() reads CCP_* from the environment it is given', async () => {
    const env = { CCP_BASE_URL: `${fake.url}/`, CCP_ACCOUNT_SID: CREDS.accountSid, CCP_AUTH_TOKEN: CREDS.authToken, CCP_APP_ID: CREDS.appId, CCP_TIMEOUT_MS: '2500' };
    const c = ccpFromEnv(env);
    expect(c.baseUrl).to.equal(fake.url);
    expect(c.timeoutMs).to.equal(2500);
    expect(await c.sendTemplateSms(MOBILE, ['1'], '1')).to.equal(0);
    expect(ccpFromEnv({}).baseUrl).to.equal('https://app.cloopen.com:8883');
  });

  it('rejects a bad configuration with a CcpError naming the variable to fix', () => {
    expect(() => client({ authToken: '' })).to.throw(CcpError, /CCP_AUTH_TOKEN/);
    expect(() => client({ baseUrl: 'ftp://example.com' })).to.throw(CcpError, /CCP_BASE_URL/);
    expect(() => ccpFromEnv({ CCP_TIMEOUT_MS: 'soon' })).to.throw(CcpError, /CCP_TIMEOUT_MS/);
  });

  it('never shows a credential in errors or when the client is inspected', () => {
    expect(errors.length).to.be.at.least(6);
    const secrets = [CREDS.authToken, CREDS.accountSid];
    const shown = [...errors.flatMap((e) => [e.message, e.stack ?? '', inspect(e)]), inspect(client()), JSON.stringify(client())];
    for (const text of shown) {
      for (const secret of secrets) expect(text).not.to.include(secret);
      expect(text).not.to.match(/sig=[0-9A-F]{32}/);
    }
  });
});
