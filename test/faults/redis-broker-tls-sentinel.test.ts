/**
 * The Redis broker over TLS (`rediss://` with `broker_use_ssl`) and through
 * Redis Sentinel (`sentinel://` with `master_name`), on servers the test
 * starts (a CA made by the test; a sentinel process monitoring a password-
 * protected master). A task runs end to end on each; a wrong CA fails with
 * an error that says why; no password shows up in errors or the URL shown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { BrokerError, Celery, Worker, type CeleryConfig } from '../../src/index.js';
import { freePort, RedisNode } from '../helpers/redis-node.js';
import { REDIS_BROKER_RESULTS_URL, uniqueName } from '../helpers/services.js';
import { makeTestPki } from '../helpers/tls.js';
import { assertNoSecrets, errorText, report, waitFor } from './support.js';

describe('Redis broker over TLS and through Sentinel', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'ts-celery-rb-tls-'));
  const pki = makeTestPki(join(dir, 'pki'));
  const node = new RedisNode({ pki });
  let sentinel: ChildProcess | null = null;
  const apps: Celery[] = [];
  const workers: Worker[] = [];

  before(async () => {
    await node.start();
  });
  after(async () => {
    for (const w of workers) await w.stop();
    await Promise.all(apps.map((a) => a.close().catch(() => undefined)));
    sentinel?.kill('SIGKILL');
    await node.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs one task through an app on `config` with an in-process worker; returns its result. */
  async function roundTrip(config: CeleryConfig): Promise<unknown> {
    const queue = uniqueName('rb-tls');
    const app = new Celery('rb-tls', { result_backend: REDIS_BROKER_RESULTS_URL, task_default_queue: queue, ...config });
    apps.push(app);
    app.task({ name: 'rb.echo' }, (v: unknown) => v);
    const worker = new Worker(app, { hostname: `${queue}@test`, concurrency: 2 });
    workers.push(worker);
    await worker.start();
    return (await app.sendTask('rb.echo', [{ via: String(config.broker_url).split(':')[0] }])).get({ timeout: 10_000 });
  }

  it('runs a task over rediss:// with the CA in broker_use_ssl, and refuses an unknown CA clearly', async () => {
    expect(await roundTrip({ broker_url: node.tlsUrl(0), broker_use_ssl: { ca: pki.caCert } })).to.deep.equal({ via: 'rediss' });
    const app = new Celery('rb-tls-bad', { broker_url: node.tlsUrl(0), broker_use_ssl: { ca: pki.otherCaCert }, task_default_queue: uniqueName('rb-tls') });
    apps.push(app);
    const err = await app.sendTask('rb.echo', [1]).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(BrokerError);
    expect((err as Error).message).to.match(/rediss:\/\/:\*\*@127\.0\.0\.1:\d+\/0/).and.to.match(/certificate/i);
    assertNoSecrets(errorText(err), [node.password], 'the TLS error');
    report('redis-broker-tls', { 'task-over-rediss': 'ok', 'unknown-ca': (err as Error).message.replace(/^.*last connection error: /, '').slice(0, 60) });
  });

  it('runs a task through sentinel:// with master_name, the password masked', async () => {
    const port = await freePort();
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(conf, [
      `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`,
      `sentinel monitor mymaster 127.0.0.1 ${node.port} 1`,
      `sentinel auth-pass mymaster ${node.password}`,
      'sentinel down-after-milliseconds mymaster 5000',
    ].join('\n'));
    let out = '';
    sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] });
    sentinel.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    sentinel.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => /\+monitor master mymaster/.test(out), 10_000, `the sentinel to monitor the master:\n${out}`, 50);
    const url = `sentinel://:${node.password}@127.0.0.1:${port}/0`;
    const config: CeleryConfig = { broker_url: url, broker_transport_options: { master_name: 'mymaster' } };
    expect(await roundTrip(config)).to.deep.equal({ via: 'sentinel' });
    expect(apps[apps.length - 1]!.broker.displayUrl).to.equal(`sentinel://:**@127.0.0.1:${port}/0`);
    report('redis-broker-sentinel', { 'task-through-sentinel': 'ok', master: `127.0.0.1:${node.port}` });
  });
});
