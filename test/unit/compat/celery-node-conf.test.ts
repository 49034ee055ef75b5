import { expect } from 'chai';
import { Celery } from '../../../src/app/celery.js';
import { defaultConf, settingsFromConf, type CeleryConf } from '../../../src/compat/celery-node/conf.js';
import { createClient, createWorker } from '../../../src/compat/celery-node/index.js';
import { setLogLevel, setLogSink } from '../../../src/support/log.js';
import { EncodeError, ImproperlyConfigured } from '../../../src/errors.js';

const conf = (changes: Partial<CeleryConf>): CeleryConf => ({ ...defaultConf(), ...changes });

describe("ts-celery/celery-node: celery-node's conf as ts-celery settings", () => {
  it("has celery-node's defaults: amqp:// broker and backend, queue celery, protocol 2", () => {
    const client = createClient();
    expect(client.conf).to.deep.equal({
      CELERY_BROKER: 'amqp://',
      CELERY_BROKER_OPTIONS: {},
      CELERY_BACKEND: 'amqp://',
      CELERY_BACKEND_OPTIONS: {},
      CELERY_QUEUE: 'celery',
      TASK_PROTOCOL: 2,
      TS_CELERY: {},
    });
    expect(createWorker('amqp://h', 'redis://r', 'q').conf).to.include({ CELERY_BROKER: 'amqp://h', CELERY_BACKEND: 'redis://r', CELERY_QUEUE: 'q' });
  });

  it('maps an amqp:// result backend on the broker itself to rpc:// (results over the broker connection)', () => {
    expect(settingsFromConf(conf({}))).to.include({ broker_url: 'amqp://', result_backend: 'rpc://', task_default_queue: 'celery', task_protocol: 2 });
    // kombu's reading: amqp:// is guest@localhost:5672, vhost "/", so these name one server.
    expect(settingsFromConf(conf({ CELERY_BROKER: 'amqp://guest:guest@localhost:5672//', CELERY_BACKEND: 'amqp://' })).result_backend).to.equal('rpc://');
    expect(settingsFromConf(conf({ CELERY_BROKER: 'amqp://u:p@h/v', CELERY_BACKEND: 'amqp://u:p@h:5672/v' })).result_backend).to.equal('rpc://');
  });

  it('refuses an amqp:// result backend it cannot honour, saying what to use instead', () => {
    expect(() => settingsFromConf(conf({ CELERY_BROKER: 'amqp://u:secret@h/a', CELERY_BACKEND: 'amqp://u:secret@h/b' })))
      .to.throw(ImproperlyConfigured, /is not the broker .*same server and vhost; or use a redis:\/\/ result backend/)
      .that.satisfies((e: Error) => !e.message.includes('secret'));
    expect(() => settingsFromConf(conf({ CELERY_BROKER: 'redis://r', CELERY_BACKEND: 'amqp://' }))).to.throw(ImproperlyConfigured, /needs an AMQP broker/);
  });

  it('passes other broker and backend URLs through (redis:// is the Redis broker once ts-celery has one)', () => {
    expect(settingsFromConf(conf({ CELERY_BROKER: 'redis://127.0.0.1:6379/9', CELERY_BACKEND: 'redis://127.0.0.1:6379/9' }))).to.include({
      broker_url: 'redis://127.0.0.1:6379/9',
      result_backend: 'redis://127.0.0.1:6379/9',
    });
    expect(settingsFromConf(conf({ CELERY_BACKEND: 'rpc://' })).result_backend).to.equal('rpc://');
  });

  it('maps the connection options it understands and names the ones it does not', () => {
    const settings = settingsFromConf(
      conf({
        CELERY_BROKER_OPTIONS: { ca: 'CA', servername: 'rabbit', rejectUnauthorized: true, timeout: 2500 },
        CELERY_BACKEND_OPTIONS: { tls: { ca: 'CA' }, CELERY_RESULT_EXPIRES: 3_600_000 },
      }),
    );
    expect(settings).to.deep.include({
      broker_use_ssl: { ca: 'CA', servername: 'rabbit', rejectUnauthorized: true },
      broker_connection_timeout: 2.5,
      redis_backend_use_ssl: { ca: 'CA' },
      result_expires: 3600,
    });
    expect(() => settingsFromConf(conf({ CELERY_BROKER_OPTIONS: { servrname: 'x' } }))).to.throw(
      ImproperlyConfigured,
      /CELERY_BROKER_OPTIONS\.servrname is not supported .*did you mean "servername"\?.*conf\.TS_CELERY/,
    );
    expect(() => settingsFromConf(conf({ CELERY_BACKEND_OPTIONS: { password: 'x' } }))).to.throw(ImproperlyConfigured, /CELERY_BACKEND_OPTIONS\.password/);
  });

  it('takes TASK_PROTOCOL 1 or 2 only, and applies TS_CELERY last, checked like any ts-celery settings', () => {
    expect(settingsFromConf(conf({ TASK_PROTOCOL: 1 })).task_protocol).to.equal(1);
    expect(() => settingsFromConf(conf({ TASK_PROTOCOL: 3 }))).to.throw(ImproperlyConfigured, /TASK_PROTOCOL must be 1 or 2, got 3/);
    const settings = settingsFromConf(conf({ TS_CELERY: { worker_concurrency: 8, task_acks_late: true } }));
    expect(settings).to.include({ worker_concurrency: 8, task_acks_late: true });
    expect(() => new Celery('x', settingsFromConf(conf({ TS_CELERY: { worker_concurency: 8 } as never })))).to.throw(ImproperlyConfigured, /did you mean "worker_concurrency"/);
  });

  it('reads conf when the app is made, at the first use: changes made before it count, as in celery-node', () => {
    const client = createClient('memory://', 'memory://');
    client.conf.CELERY_QUEUE = 'changed';
    client.conf.TASK_PROTOCOL = 1;
    expect(client.app.conf).to.include({ task_default_queue: 'changed', task_protocol: 1, broker_url: 'memory://' });
  });

  it('checks sendTask arguments before anything is sent, as celery-node did', () => {
    const client = createClient('memory://', 'memory://');
    const task = client.createTask('t');
    expect(() => task.applyAsync(5 as never)).to.throw(EncodeError, /args is not array/);
    expect(() => task.applyAsync([], 'k' as never)).to.throw(EncodeError, /kwargs is not object/);
    expect(() => client.sendTask('t', [1n])).to.throw(EncodeError, /task t: args\[0\] is a BigInt/);
    expect(() => client.sendTask('t', [], { f: () => 1 })).to.throw(EncodeError, /kwargs\.f/);
  });

  it('a worker whose broker URL ts-celery cannot serve rejects start() with the reason, and leaves no signal handlers behind', async () => {
    const signals = process.listenerCount('SIGTERM') + process.listenerCount('SIGINT');
    const worker = createWorker('kafka://k', 'redis://r');
    setLogLevel('warning'); // chosen, so the worker keeps it (and this process's other tests their quiet)
    const lines: string[] = [];
    const previous = setLogSink((line) => lines.push(line));
    const err = await worker.start().then(() => null, (e: unknown) => e).finally(() => setLogSink(previous));
    expect(lines.join('\n')).to.match(/CRITICAL\/MainProcess\] worker: cannot start: Unsupported broker_url/);
    expect(err).to.be.instanceOf(ImproperlyConfigured);
    expect((err as Error).message).to.match(/Unsupported broker_url "kafka:\/\/k"/);
    expect(process.listenerCount('SIGTERM') + process.listenerCount('SIGINT')).to.equal(signals);
    await worker.disconnect();
  });

  it("register() refuses a missing handler and a name registered twice, as celery-node's does", () => {
    const worker = createWorker('memory://', 'memory://');
    expect(() => worker.register('t', undefined as never)).to.throw(ImproperlyConfigured, 'Undefined handler');
    worker.register('t', () => 1);
    expect(() => worker.register('t', () => 2)).to.throw(ImproperlyConfigured, 'Handler is already set');
  });
});
