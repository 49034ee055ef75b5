/**
 * The Meiduo SMS page in real headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core; nothing is downloaded), in both shapes of the demo: type a number, click, see
 * the countdown start while the (2-s slow) gateway has not delivered anything yet, see the SMS
 * arrive, type its code and verify it. A screenshot per mode goes to test/artifacts/.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from '../helpers/ts-worker.js';
import { MODES, randomMobile, startMeiduo, waitFor, waitForSms, type MeiduoEnv } from './meiduo-env.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const ARTIFACTS = join(ROOT, 'test', 'artifacts');

/** The "get code" button while it shows a countdown ("57 s"). */
const COUNTING = /^\d+ s$/;

/** The number of seconds the "get code" button shows, or null when it shows its label. */
async function countdownOf(page: Page): Promise<number | null> {
  const text = (await page.textContent('#get-code'))?.trim() ?? '';
  const m = /^(\d+) s$/.exec(text);
  return m ? Number(m[1]) : null;
}

describe('Meiduo SMS page in headless Chromium', function () {
  this.timeout(30_000);
  let browser: BrowserContext;
  let userDataDir: string;

  before(async function () {
    this.timeout(30_000);
    mkdirSync(ARTIFACTS, { recursive: true });
    userDataDir = mkdtempSync(join(tmpdir(), 'meiduo-chromium-'));
    // --user-data-dir comes from launchPersistentContext: a fresh profile per run.
    browser = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  for (const mode of MODES) {
    describe(mode, () => {
      let env: MeiduoEnv;
      let page: Page | null = null;

      before(async function () {
        this.timeout(60_000);
        // The gateway takes 2 s per SMS: the countdown must not wait for it.
        env = await startMeiduo(mode, { fake: { latencyMs: 2000 } });
      });
      after(async function () {
        this.timeout(30_000);
        await page?.close();
        await env?.stop();
      });

      it('starts the countdown when the server answers, then verifies the code that arrived by SMS', async () => {
        page = await browser.newPage();
        page.setDefaultTimeout(15_000);
        const mobile = randomMobile();
        await page.goto(`${env.shop.url}/`);
        await page.fill('#mobile', mobile);
        await page.click('#get-code');

        // The countdown shows as soon as the response is in, while the SMS is still on its way.
        await page.locator('#get-code', { hasText: COUNTING }).waitFor();
        const startedAt = await countdownOf(page);
        expect(env.fake.outbox().filter((e) => e.to === mobile), 'SMS delivered before the countdown showed').to.deep.equal([]);
        expect(startedAt).to.be.within(1, 60);
        expect(await page.isDisabled('#get-code')).to.equal(true);
        expect(await page.textContent('#sms-message')).to.match(/on its way/);
        // ...and it counts down.
        const p = page;
        await waitFor(async () => ((await countdownOf(p)) ?? 60) < startedAt!, 5000, 'the countdown to tick');

        const sms = await waitForSms(env.fake, mobile);
        const code = sms.datas[0]!;
        expect(code).to.match(/^\d{6}$/);

        await page.fill('#sms-code', code);
        await page.click('#verify');
        await page.locator('#verify-message', { hasText: 'Verified' }).waitFor();
        expect(await page.getAttribute('#verify-message', 'class')).to.match(/\bok\b/);
        await page.screenshot({ path: join(ARTIFACTS, `meiduo-sms-${mode}.png`), fullPage: true });
      });

      it('shows the 429 to the user when the same number asks again within 60 s', async () => {
        env.fake.setBehaviour({ latencyMs: 0 }); // this one is about the refusal, not the provider
        const mobile = randomMobile();
        const first = await browser.newPage();
        const second = await browser.newPage();
        try {
          for (const p of [first, second]) {
            p.setDefaultTimeout(15_000);
            await p.goto(`${env.shop.url}/`);
            await p.fill('#mobile', mobile);
          }
          await first.click('#get-code');
          await first.locator('#get-code', { hasText: COUNTING }).waitFor();

          await second.click('#get-code');
          await second.locator('#sms-message', { hasText: /\S/ }).waitFor();
          expect(await second.textContent('#sms-message')).to.match(/less than 60 s ago/);
          expect(await second.getAttribute('#sms-message', 'class')).to.match(/\berror\b/);
          expect(await countdownOf(second), 'no countdown on a refusal').to.equal(null);
          expect(await second.isDisabled('#get-code')).to.equal(false);
          await second.screenshot({ path: join(ARTIFACTS, `meiduo-sms-429-${mode}.png`), fullPage: true });
          await waitForSms(env.fake, mobile);
          expect(env.fake.outbox().filter((e) => e.to === mobile), 'SMS sent to the number').to.have.length(1);
        } finally {
          await first.close();
          await second.close();
        }
      });
    });
  }
});
