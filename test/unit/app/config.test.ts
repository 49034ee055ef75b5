import { expect } from 'chai';
import { Celery } from '../../../src/index.js';
import { ImproperlyConfigured } from '../../../src/errors.js';

describe('settings', () => {
  it("has Celery's defaults", () => {
    const app = new Celery('t');
    expect(app.conf).to.deep.include({
      task_default_queue: 'celery', task_serializer: 'json', accept_content: ['json'], result_expires: 86_400,
      task_acks_late: false, worker_prefetch_multiplier: 4, task_track_started: false, broker_heartbeat: 120,
    });
  });

  it('rejects an unknown setting, suggesting the right name', () => {
    expect(() => new Celery('t', { brokr_url: 'amqp://x' } as never)).to.throw(ImproperlyConfigured, /Unknown setting "brokr_url": did you mean "broker_url"/);
    expect(() => new Celery('t').configFromObject({ CELERY_TASK_ACKS_LATE: true })).to.throw(ImproperlyConfigured, /did you mean "task_acks_late"/);
  });

  it('rejects wrong types and non-JSON serializers', () => {
    expect(() => new Celery('t', { task_acks_late: 'yes' as never })).to.throw(ImproperlyConfigured, /task_acks_late must be a bool/);
    expect(() => new Celery('t', { accept_content: ['json', 'pickle'] })).to.throw(ImproperlyConfigured, /pickle/);
    expect(() => new Celery('t', { task_serializer: 'pickle' })).to.throw(ImproperlyConfigured, /task_serializer/);
  });

  it('lets CELERY_BROKER_URL and CELERY_RESULT_BACKEND override the config', () => {
    const saved = { broker: process.env.CELERY_BROKER_URL, backend: process.env.CELERY_RESULT_BACKEND };
    process.env.CELERY_BROKER_URL = 'amqp://env-host//';
    process.env.CELERY_RESULT_BACKEND = 'redis://env-host/1';
    try {
      const app = new Celery('t', { broker_url: 'amqp://config-host//', result_backend: 'redis://config-host/0' });
      expect(app.conf.broker_url).to.equal('amqp://env-host//');
      expect(app.conf.result_backend).to.equal('redis://env-host/1');
    } finally {
      // Restored key by key: replacing process.env with a plain object would stop TZ changes from reaching Intl.
      for (const [name, value] of [['CELERY_BROKER_URL', saved.broker], ['CELERY_RESULT_BACKEND', saved.backend]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('skips undefined values so optional env-driven settings are easy', () => {
    const app = new Celery('t', { result_backend: undefined });
    expect(app.conf.result_backend).to.equal(null);
  });

  it('loads a config module by path, and reports a missing one by name', async () => {
    const app = new Celery('t').configFromObject('test/unit/app/sample-config');
    await app.ready();
    expect(app.conf.task_default_queue).to.equal('from-module');
    const bad = new Celery('t').configFromObject('test/unit/app/no-such-config');
    try {
      await bad.ready();
      expect.fail('should reject');
    } catch (err) {
      expect(err).to.be.instanceOf(ImproperlyConfigured);
      expect((err as Error).message).to.match(/Cannot find config module "test\/unit\/app\/no-such-config"/);
    }
  });
});
