/**
 * TLS: `amqps://` with `broker_use_ssl` (CA, client certificate and key) and
 * `rediss://` with `redis_backend_use_ssl` (CA), against the fault tests'
 * RabbitMQ node (TLS listener that requires a client certificate) and Redis
 * (TLS port), with a CA and certificates made by the test (test/helpers/tls.ts).
 *
 * - End to end: a producer and a worker both on amqps://, results on rediss://.
 * - A server certificate from an unknown CA, or no client certificate when the
 *   broker requires one, fails with a BrokerError/BackendError that says so.
 */
import { expect } from 'chai';
import { BackendError, BrokerError, Celery } from '../../src/index.js';
import {
  assertNoSecrets, errorText, faultFixture, newRun, producerApp, report, startFaultWorker,
} from './support.js';

describe('TLS: amqps:// and rediss:// with CA and client certificates', function () {
  this.timeout(60_000);
  const fx = faultFixture();
  const { workers, apps } = fx;
  const queue = `faults-${newRun('tls')}`;
  fx.queues.push(queue);

  it('runs a task end to end over amqps:// and rediss://', async () => {
    const { rabbit, redis } = fx.svc;
    const pki = rabbit.pki;
    const worker = await startFaultWorker({
      broker: rabbit.tlsUrl, backend: redis.tlsUrl(7), queue, concurrency: 2,
      env: { FAULTS_BROKER_CA: pki.caCert, FAULTS_BROKER_CERT: pki.clientCert, FAULTS_BROKER_KEY: pki.clientKey, FAULTS_BACKEND_CA: pki.caCert },
    });
    workers.push(worker);
    const app = producerApp({
      broker_url: rabbit.tlsUrl,
      broker_use_ssl: { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey },
      result_backend: redis.tlsUrl(7),
      redis_backend_use_ssl: { ca: pki.caCert },
      task_default_queue: queue,
    });
    apps.push(app);
    const result = await app.sendTask('faults.echo', [{ over: 'tls' }]);
    expect(await result.get({ timeout: 10_000 })).to.deep.equal({ over: 'tls' });

    // The connections really are TLS: RabbitMQ reports them as ssl.
    const out = await rabbit.ctl(['list_connections', 'name', 'ssl', 'ssl_protocol', '--formatter', 'json']);
    const tls = (JSON.parse(out) as Array<{ name: string; ssl: boolean; ssl_protocol: string }>).filter((c) => c.ssl);
    expect(tls.length, 'TLS connections (worker and producer)').to.be.at.least(2);
    expect(worker.output()).to.match(/transport: +amqps:\/\/faults:\*\*@127\.0\.0\.1:5682\//);
    expect(worker.output()).to.match(/results: +rediss:\/\/:\*\*@127\.0\.0\.1:\d+\/7/);
    assertNoSecrets(worker.output(), [rabbit.password, redis.password], 'worker output');
    report('tls', { 'amqps-connections': tls.length, protocol: tls[0]?.ssl_protocol ?? '?', 'result-over-rediss': 'ok' });
  });

  it('refuses a server certificate from an unknown CA, and a missing client certificate, with a clear error', async () => {
    const { rabbit, redis } = fx.svc;
    const pki = rabbit.pki;
    const attempt = async (config: ConstructorParameters<typeof Celery>[1]): Promise<unknown> => {
      const app = producerApp({ ...(config as object), task_default_queue: queue, task_publish_retry: false });
      apps.push(app);
      try {
        await app.sendTask('faults.echo', ['x']);
        return null;
      } catch (err) {
        return err;
      }
    };
    const unknownCa = await attempt({ broker_url: rabbit.tlsUrl, broker_use_ssl: { ca: pki.otherCaCert, cert: pki.clientCert, key: pki.clientKey } });
    expect(unknownCa).to.be.instanceOf(BrokerError);
    expect((unknownCa as Error).message).to.match(/amqps:\/\/faults:\*\*@127\.0\.0\.1:5682\//).and.to.match(/certificate/i);

    const noClientCert = await attempt({ broker_url: rabbit.tlsUrl, broker_use_ssl: { ca: pki.caCert } });
    expect(noClientCert).to.be.instanceOf(BrokerError);

    const reader = new Celery('reader', { result_backend: redis.tlsUrl(7), redis_backend_use_ssl: { ca: pki.otherCaCert } });
    apps.push(reader);
    let backendError: unknown = null;
    try {
      await reader.asyncResult('any').get({ timeout: 10_000 });
    } catch (err) {
      backendError = err;
    }
    expect(backendError).to.be.instanceOf(BackendError);
    expect((backendError as Error).message).to.match(/certificate/i);
    for (const err of [unknownCa, noClientCert, backendError]) assertNoSecrets(errorText(err), [rabbit.password, redis.password], 'a TLS error');
    report('tls-refusals', {
      'unknown-ca': (unknownCa as Error).message.replace(/^.*\(/, '(').slice(0, 60),
      'no-client-cert': (noClientCert as Error).message.replace(/^.*\(/, '(').slice(0, 60),
    });
  });
});
