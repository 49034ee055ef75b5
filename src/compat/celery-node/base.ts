/**
 * What celery-node's client and worker share: the `conf` object and the
 * ts-celery app made from it. As in celery-node, nothing connects when the
 * object is created, so `conf` can still be changed until the first send or
 * `start()`; the app is made from it then.
 */
import { Celery } from '../../app/celery.js';
import { defaultConf, settingsFromConf, type CeleryConf } from './conf.js';

export class Base {
  /** celery-node's configuration (plus `TS_CELERY`); read when the app is made. */
  readonly conf: CeleryConf;
  private appInstance: Celery | null = null;

  constructor(broker = 'amqp://', backend = 'amqp://', queue = 'celery') {
    this.conf = defaultConf();
    this.conf.CELERY_BROKER = broker;
    this.conf.CELERY_BACKEND = backend;
    this.conf.CELERY_QUEUE = queue;
  }

  /**
   * The ts-celery app underneath, made from `conf` on first use (the first
   * send, `start()`, `isReady()`). Throws `ImproperlyConfigured` for a `conf`
   * that cannot be honoured. Use it for what celery-node never had
   * (`app.sendTask(name, args, kwargs, { countdown: 10 })`).
   */
  get app(): Celery {
    if (!this.appInstance) {
      this.appInstance = new Celery('celery-node', settingsFromConf(this.conf));
      this.onAppCreated(this.appInstance);
    }
    return this.appInstance;
  }

  /** True once the app exists (something used the connection). */
  protected get connected(): boolean {
    return this.appInstance !== null;
  }

  /** Subclasses add what they kept until the app existed (the worker's handlers). */
  protected onAppCreated(_app: Celery): void {}

  /**
   * Resolves once the broker connection is open (and, with an `amqp://`
   * result backend, the reply queue is consumed). Rejects with the
   * `BrokerError` that says why it cannot connect.
   */
  async isReady(): Promise<void> {
    const app = this.app;
    await app.ready();
    await app.broker.connect();
    await app.backend.beforePublish?.();
  }

  /** Closes the broker connection and the result backend. */
  async disconnect(): Promise<void> {
    await this.appInstance?.close();
  }
}
