/**
 * `npm start`: the Meiduo SMS demo.
 *
 * With no broker configured (a fresh machine), everything runs in this process on the embedded
 * default: the in-memory broker and result backend, a worker with `-c 1000`, the shop on
 * http://127.0.0.1:${PORT:-8000}/ and a fake CCP gateway on http://127.0.0.1:${CCP_FAKE_PORT:-8883}/
 * that is slow (2 s) and fails 20 % of the time, so you can watch the countdown start at once and the
 * worker retry.
 *
 * With CELERY_BROKER_URL (RabbitMQ), this runs only the web side and the fake gateway, and prints
 * the `npx ts-celery worker` command to run in another terminal. Codes and throttles then live in
 * Redis (MEIDUO_REDIS_URL, default redis://127.0.0.1:6379/2, Meiduo's `verify_code` database).
 *
 * Other settings: CCP_FAKE_LATENCY_MS, CCP_FAKE_FAILURE_RATE, CCP_FAKE_FAILURE_MODE (as for
 * scripts/fake-ccp.ts), CCP_BASE_URL (default: the fake gateway).
 *
 * Ctrl+C: warm shutdown (SMS tasks in progress finish); a second Ctrl+C quits at once.
 */
import { hostname } from 'node:os';
import { setLogLevel, Worker } from 'ts-celery';
import { maskUrl } from '../src/support/url.js';
import { startShop, type Shop } from '../examples/meiduo/server.js';
import { app } from '../tasks/main.js';
import { startFakeCcp, type FailureMode, type FakeCcp } from './fake-ccp.js';

const env = process.env;

function numberFromEnv(name: string, fallback: number): number {
  const raw = env[name];
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${raw} is not a number >= 0`);
  return n;
}

/** Single-quotes a value for a POSIX shell. */
function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * A broker/backend URL fit to print in a command. RabbitMQ's default `guest` password is public,
 * so that command is printed whole, ready to paste; any other password is masked (terminals get
 * recorded and shared), and the caller tells the user to fill it in.
 */
function printableUrl(url: string): { text: string; masked: boolean } {
  let password = '';
  try {
    password = decodeURIComponent(new URL(url).password);
  } catch {
    /* unparseable: mask whatever maskUrl finds */
  }
  const masked = maskUrl(url);
  if (masked === url || password === 'guest') return { text: url, masked: false };
  return { text: masked, masked: true };
}

async function main(): Promise<void> {
  await app.ready();
  const embedded = app.conf.broker_url.startsWith('memory:');
  const shopPort = numberFromEnv('PORT', 8000);
  const fakePort = numberFromEnv('CCP_FAKE_PORT', 8883);

  let fake: FakeCcp | null = null;
  let shop: Shop | null = null;
  let worker: Worker | null = null;
  let stopping = false;

  const shutdown = async (): Promise<void> => {
    // Order matters: stop taking requests (no new tasks), let running tasks finish against the
    // gateway, then stop the gateway.
    await shop?.close();
    if (worker) await worker.stop(); // running SMS tasks finish first
    await app.close();
    await fake?.close();
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      console.log(`${signal} again: cold shutdown, SMS tasks in progress are abandoned.`);
      worker?.abortRunning();
      process.exit(1);
    }
    stopping = true;
    console.log(
      `\n${signal}: warm shutdown` +
        (worker ? ': waiting for SMS tasks in progress (Ctrl+C again to quit at once); retries not yet due are dropped, as the embedded broker keeps nothing' : '') +
        '...',
    );
    shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(`Error while shutting down: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    fake = await startFakeCcp({
      port: fakePort,
      latencyMs: numberFromEnv('CCP_FAKE_LATENCY_MS', 2000),
      failureRate: numberFromEnv('CCP_FAKE_FAILURE_RATE', 0.2),
      failureMode: (env.CCP_FAKE_FAILURE_MODE || 'mixed') as FailureMode,
      accountSid: env.CCP_ACCOUNT_SID || undefined,
      authToken: env.CCP_AUTH_TOKEN || undefined,
      appId: env.CCP_APP_ID || undefined,
      log: (line) => console.log(`[fake CCP] ${line}`),
    });
    // The task reads CCP_BASE_URL when it runs: in-process, pointing it here is enough.
    if (!env.CCP_BASE_URL) env.CCP_BASE_URL = fake.url;

    if (embedded) {
      setLogLevel('info'); // what `-l info` shows: each task received, retried, succeeded
      worker = new Worker(app, { hostname: `celery@${hostname()}`, concurrency: 1000 });
      await worker.start();
      // As the CLI does: a stray promise in task code must not take the demo down.
      process.on('unhandledRejection', (reason) => console.error('Unhandled promise rejection in task code:', reason));
    }

    const redisUrl = embedded ? undefined : env.MEIDUO_REDIS_URL || 'redis://127.0.0.1:6379/2';
    shop = await startShop({
      port: shopPort,
      ...(redisUrl ? { redisUrl } : {}),
      log: (line) => console.log(`[shop] ${line}`),
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const portVar = (e as { port?: number }).port === fakePort ? 'CCP_FAKE_PORT' : 'PORT';
    const hint = e.code === 'EADDRINUSE' ? `: the port is taken; set ${portVar} to another one` : '';
    console.error(`Could not start the demo: ${e.message}${hint}`);
    await shutdown().catch(() => undefined);
    process.exit(1);
  }

  const b = fake.behaviour();
  const failures = `${Math.round(b.failureRate * 100)} % failures (${b.failureMode})`;
  console.log('');
  console.log(embedded ? 'Meiduo SMS demo: embedded mode (in-memory broker and results, worker in this process, -c 1000)' : 'Meiduo SMS demo: web side only');
  console.log(`  Shop:             ${shop.url}/`);
  console.log(`  Fake CCP gateway: ${fake.url}/   (${b.latencyMs} ms latency, ${failures}; delivered SMS: ${fake.url}/outbox)`);
  if (env.CCP_BASE_URL !== fake.url) console.log(`  SMS are sent to CCP_BASE_URL=${env.CCP_BASE_URL}`);
  if (!embedded) {
    console.log(`  Broker:           ${maskUrl(app.conf.broker_url)}`);
    console.log(`  Codes, throttles: ${env.MEIDUO_REDIS_URL || 'redis://127.0.0.1:6379/2'} (MEIDUO_REDIS_URL)`);
    const vars: Array<[string, string]> = [];
    let masked = false;
    for (const name of ['CELERY_BROKER_URL', 'CELERY_RESULT_BACKEND'] as const) {
      const value = env[name];
      if (!value) continue;
      const p = printableUrl(value);
      masked ||= p.masked;
      vars.push([name, p.text]);
    }
    vars.push(['CCP_BASE_URL', env.CCP_BASE_URL!]);
    console.log('');
    console.log('Nothing sends SMS until a worker runs. In another terminal, in this folder:');
    console.log(`  ${vars.map(([k, v]) => `${k}=${shellQuote(v)}`).join(' ')} npx ts-celery worker -A tasks -l info -c 1000`);
    if (masked) console.log('  (passwords are masked above: use the same values as in this terminal)');
  }
  console.log('');
  console.log(`Open ${shop.url}/ , ask for a code, read it in the [fake CCP] lines below. Ctrl+C to stop.`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
