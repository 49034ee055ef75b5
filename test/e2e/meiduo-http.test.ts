/**
 * The Meiduo SMS flow over HTTP, in both shapes of the demo (see meiduo-env.ts): the shop answers
 * without waiting for the SMS provider, the worker delivers the SMS (retrying failures with
 * backoff), and the endpoint refuses bad numbers, repeats within 60 s, floods from one address and
 * wrong codes.
 */
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { CCP_DEMO_CREDENTIALS } from '../../tasks/sms/ccp.js';
import type { RequestEntry } from '../../scripts/fake-ccp.js';
import { RedisStore } from '../../examples/meiduo/store.js';
import { api, gatewayRequests, MODES, randomMobile, startMeiduo, waitForSms, type MeiduoEnv } from './meiduo-env.js';

/** What a correctly signed CCP request to `mobile` looks like, checked independently of the client. */
function expectSignedRequest(entry: RequestEntry, mobile: string): void {
  const [sid, timestamp] = Buffer.from(entry.authorization ?? '', 'base64').toString('utf8').split(':');
  expect(sid).to.equal(CCP_DEMO_CREDENTIALS.accountSid);
  expect(timestamp).to.match(/^\d{14}$/);
  expect(entry.path).to.equal(`/2013-12-26/Accounts/${sid}/SMS/TemplateSMS`);
  const sig = createHash('md5').update(`${sid}${CCP_DEMO_CREDENTIALS.authToken}${timestamp}`).digest('hex').toUpperCase();
  expect(entry.sig).to.equal(sig);
  expect(entry.body).to.deep.include({ to: mobile, appId: CCP_DEMO_CREDENTIALS.appId, templateId: '1' });
}

for (const mode of MODES) {
  describe(`Meiduo SMS codes over HTTP (${mode})`, function () {
    this.timeout(30_000);
    let env: MeiduoEnv;

    before(async function () {
      this.timeout(60_000);
      // 3 code requests per address per minute, so the per-IP test stays small. Each test speaks
      // from its own 127.0.0.x address, so they don't use up each other's quota.
      env = await startMeiduo(mode, { shop: { smsRateLimit: { max: 3, windowSec: 60 } } });
    });
    after(async function () {
      this.timeout(30_000);
      await env?.stop();
    });
    afterEach(function () {
      if (this.currentTest?.state === 'failed') console.log(`worker output:\n${env.workerOutput()}`);
    });

    it('answers {"code": "0"} before the gateway is even called, then the worker delivers the signed SMS with the stored code', async () => {
      env.fake.setBehaviour({ latencyMs: 2000, failureRate: 0, failNext: 0 });
      const mobile = randomMobile();

      const res = await api(env.shop.url, `/sms_codes/${mobile}/`, { from: '127.0.0.2' });
      const answeredByGateway = env.fake.requests().filter((r) => r.outcome !== 'pending');
      expect(res.status).to.equal(200);
      expect(res.headers['content-type']).to.match(/^application\/json/);
      expect(res.body).to.deep.equal({ code: '0', errmsg: 'ok' });
      // The answer did not wait for the gateway: when it came, the gateway had answered nothing.
      expect(answeredByGateway).to.deep.equal([]);

      const sms = await waitForSms(env.fake, mobile);
      const requests = await gatewayRequests(env.fake, mobile);
      expect(requests).to.have.length(1);
      // Stronger: the gateway first heard of this SMS after the shop had answered (ms resolution).
      // This is the first call to a fresh gateway (a new TCP connection). With RabbitMQ the order is
      // likely, not guaranteed: the broker may deliver the task to the worker before it confirms the
      // publish to the shop, and over a warm keep-alive connection the worker then sometimes reaches
      // CCP a few ms before the shop's answer reaches the client. The check above is the guarantee.
      expect(Date.parse(requests[0]!.at)).to.be.at.least(res.receivedAt);
      expectSignedRequest(requests[0]!, mobile);
      expect(requests[0]).to.include({ outcome: 'delivered', statusCode: '000000' });

      // The SMS carries the code the shop stored, valid "5" minutes (300 s / 60).
      const stored = await env.shop.store.get(`sms_${mobile}`);
      expect(stored).to.match(/^\d{6}$/);
      expect(sms).to.deep.include({ to: mobile, templateId: '1', datas: [stored, '5'] });
      if (env.shop.store instanceof RedisStore) {
        // Meiduo's keys and lifetimes, in Redis (ioredis adds this run's key prefix).
        expect(await env.shop.store.redis.ttl(`sms_${mobile}`)).to.be.within(250, 300);
        expect(await env.shop.store.redis.ttl(`send_flag_${mobile}`)).to.be.within(10, 60);
      }
    });

    if (mode === 'embedded') {
      // Inherently >= 9 s (3 s + 6 s of backoff), so once, on the embedded default.
      it('retries a failing gateway after 3 s, then 6 s, and then delivers', async function () {
        this.timeout(40_000);
        env.fake.setBehaviour({ latencyMs: 100, failureRate: 0, failNext: 2, failureMode: 'status' });
        const mobile = randomMobile();

        const res = await api(env.shop.url, `/sms_codes/${mobile}/`, { from: '127.0.0.3' });
        expect(res.body).to.deep.equal({ code: '0', errmsg: 'ok' });

        const sms = await waitForSms(env.fake, mobile, 30_000);
        const requests = await gatewayRequests(env.fake, mobile);
        expect(requests.map((r) => r.outcome)).to.deep.equal(['failed', 'failed', 'delivered']);
        const [t0, t1, t2] = requests.map((r) => Date.parse(r.at)) as [number, number, number];
        // Backoff 3 x 2^(n-1) s counted from each failure's answer; generous upper bounds.
        expect(t1 - t0, 'gap before the first retry (ms)').to.be.within(3000, 8000);
        expect(t2 - t1, 'gap before the second retry (ms)').to.be.within(6000, 12_000);
        // All three carried the same code, the one the shop stored.
        const codes = requests.map((r) => (r.body as { datas: string[] }).datas[0]);
        expect(new Set(codes).size).to.equal(1);
        expect(sms.datas[0]).to.equal(codes[0]);
      });
    }

    it('refuses a second request for the same number within 60 s with 429 and a JSON error', async () => {
      env.fake.setBehaviour({ latencyMs: 0, failureRate: 0, failNext: 0 });
      const mobile = randomMobile();

      const first = await api(env.shop.url, `/sms_codes/${mobile}/`, { from: '127.0.0.4' });
      expect(first.status).to.equal(200);
      // From another address, so it is the per-number flag that refuses, not the per-IP limit.
      const second = await api(env.shop.url, `/sms_codes/${mobile}/`, { from: '127.0.0.5' });
      expect(second.status).to.equal(429);
      expect(second.headers['content-type']).to.match(/^application\/json/);
      expect(second.body).to.include({ code: '4002' });
      expect(second.body.errmsg).to.match(/60 s/);
      expect(Number(second.headers['retry-after'])).to.be.within(1, 60);

      await waitForSms(env.fake, mobile);
      expect(await gatewayRequests(env.fake, mobile)).to.have.length(1);
    });

    it('refuses a malformed number with 400 and a JSON error', async () => {
      const bad = ['1380013800', '138001380001', '12800138000', '23800138000', '1380013800a', 'abcdefghijk', '%2B8613800138000', '%E4%B8%AD'];
      for (const mobile of bad) {
        const res = await api(env.shop.url, `/sms_codes/${mobile}/`, { from: '127.0.0.6' });
        expect(res.status, mobile).to.equal(400);
        expect(res.headers['content-type'], mobile).to.match(/^application\/json/);
        expect(res.body, mobile).to.include({ code: '4007' });
        expect(res.body.errmsg, mobile).to.be.a('string').and.not.be.empty;
      }
      // Nothing was throttled either: none of them counted against the address.
      const ok = await api(env.shop.url, `/sms_codes/${randomMobile()}/`, { from: '127.0.0.6' });
      expect(ok.status).to.equal(200);
    });

    it('limits code requests per client address with 429 and a JSON error; other addresses still get codes', async () => {
      env.fake.setBehaviour({ latencyMs: 0, failureRate: 0, failNext: 0 });
      for (let i = 0; i < 3; i++) {
        const res = await api(env.shop.url, `/sms_codes/${randomMobile()}/`, { from: '127.0.0.7' });
        expect(res.status, `request ${i + 1} of 3`).to.equal(200);
      }
      const refusedMobile = randomMobile();
      const refused = await api(env.shop.url, `/sms_codes/${refusedMobile}/`, { from: '127.0.0.7' });
      expect(refused.status).to.equal(429);
      expect(refused.headers['content-type']).to.match(/^application\/json/);
      expect(refused.body).to.include({ code: '4002' });
      expect(refused.body.errmsg).to.match(/address/);
      expect(Number(refused.headers['retry-after'])).to.be.within(1, 60);
      // The refused number was not flagged: asked from elsewhere, it gets its code.
      const elsewhere = await api(env.shop.url, `/sms_codes/${refusedMobile}/`, { from: '127.0.0.8' });
      expect(elsewhere.status).to.equal(200);
    });

    it('verifies the right code once; a wrong, reused or expired code gets 400', async () => {
      env.fake.setBehaviour({ latencyMs: 0, failureRate: 0, failNext: 0 });
      const mobile = randomMobile();
      const from = '127.0.0.9';
      expect((await api(env.shop.url, `/sms_codes/${mobile}/`, { from })).status).to.equal(200);
      const code = (await waitForSms(env.fake, mobile)).datas[0]!;
      const verify = (smsCode: string, who = mobile) => api(env.shop.url, '/sms_codes/verify', { method: 'POST', json: { mobile: who, sms_code: smsCode }, from });

      const wrongCode = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
      const wrong = await verify(wrongCode);
      expect(wrong.status).to.equal(400);
      expect(wrong.body).to.include({ code: '4008' });

      const right = await verify(code);
      expect(right.status).to.equal(200);
      expect(right.body).to.include({ code: '0' });

      const reused = await verify(code);
      expect(reused.status, 'a code works once').to.equal(400);
      expect(reused.body).to.include({ code: '4008' });

      // A code stored with a 1-s lifetime, read after it lapsed: the store's own expiry, not a delete.
      const other = randomMobile();
      await env.shop.store.set(`sms_${other}`, '123456', 1);
      await new Promise((r) => setTimeout(r, 1200));
      const expired = await verify('123456', other);
      expect(expired.status).to.equal(400);
      expect(expired.body.errmsg).to.match(/expired/);

      const missing = await api(env.shop.url, '/sms_codes/verify', { method: 'POST', json: { mobile }, from });
      expect(missing.status).to.equal(400);
      expect(missing.body).to.include({ code: '4003' });
      const notJson = await api(env.shop.url, '/sms_codes/verify', { method: 'POST', rawBody: 'mobile=1', from });
      expect(notJson.status).to.equal(400);
    });

    it('throws a code away after 5 wrong guesses', async () => {
      env.fake.setBehaviour({ latencyMs: 0, failureRate: 0, failNext: 0 });
      const mobile = randomMobile();
      const from = '127.0.0.10';
      expect((await api(env.shop.url, `/sms_codes/${mobile}/`, { from })).status).to.equal(200);
      const code = (await waitForSms(env.fake, mobile)).datas[0]!;
      const verify = (smsCode: string) => api(env.shop.url, '/sms_codes/verify', { method: 'POST', json: { mobile, sms_code: smsCode }, from });
      for (let i = 1; i <= 5; i++) {
        const guess = String((Number(code) + i) % 1_000_000).padStart(6, '0');
        expect((await verify(guess)).status).to.equal(400);
      }
      const late = await verify(code);
      expect(late.status, 'the right code, after 5 wrong guesses').to.equal(400);
    });
  });
}

describe('Meiduo SMS codes when the task cannot be queued', () => {
  it('answers 503 with a JSON error and lets the number ask again at once', async () => {
    // Imported here, not at the top: see meiduo-env.ts on why `tasks` is loaded lazily.
    const { startShop } = await import('../../examples/meiduo/server.js');
    let brokerUp = false;
    const lines: string[] = [];
    const shop = await startShop({
      sendSmsCode: async () => {
        if (!brokerUp) throw new Error('RabbitMQ refused the connection');
      },
      log: (line) => lines.push(line),
    });
    try {
      const mobile = randomMobile();
      const down = await api(shop.url, `/sms_codes/${mobile}/`);
      expect(down.status).to.equal(503);
      expect(down.body).to.include({ code: '5000' });
      expect(lines.join('\n')).to.match(/RabbitMQ refused the connection/);
      brokerUp = true;
      const again = await api(shop.url, `/sms_codes/${mobile}/`);
      expect(again.status, 'no 60-s wait after a code that was never sent').to.equal(200);
    } finally {
      await shop.close();
    }
  });
});
