/** The start-up banner, in the shape Python Celery prints. */
import { arch, platform, release } from 'node:os';
import type { Worker } from '../worker/worker.js';
import { queueDeclaration } from '../app/routing.js';
import { VERSION } from '../support/version.js';

export function banner(worker: Worker): string {
  const app = worker.app;
  const conf = app.conf;
  const queues = worker.queues.map((q) => {
    const d = queueDeclaration(conf, q);
    return `                .> ${q.padEnd(16)} exchange=${d.exchange.name}(${d.exchange.type}) key=${d.routingKey}`;
  });
  // As Celery's banner: the built-in celery.* tasks (canvas helpers) are not listed.
  const tasks = [...app.tasks.keys()].filter((name) => !name.startsWith('celery.')).sort().map((name) => `  . ${name}`);
  const now = new Date().toISOString().replace('T', ' ').slice(0, 19);
  return [
    '',
    ` -------------- ${worker.hostname} v${VERSION} (ts-celery)`,
    '--- ***** -----',
    `-- ******* ---- ${platform()}-${release()}-${arch()} node ${process.versions.node} ${now}`,
    '- *** --- * ---',
    '- ** ---------- [config]',
    `- ** ---------- .> app:         ${app.main}`,
    `- ** ---------- .> transport:   ${app.broker.displayUrl}`,
    `- ** ---------- .> results:     ${app.backend.displayUrl}`,
    `- *** --- * --- .> concurrency: ${worker.concurrency} (${worker.pool.name})`,
    `-- ******* ---- .> prefetch:    ${worker.prefetch || 'unlimited'} per queue`,
    `--- ***** ----- .> acks:        ${conf.task_acks_late ? 'late (after the task)' : 'early (when the task starts)'}`,
    ' -------------- [queues]',
    ...queues,
    '',
    '[tasks]',
    ...(tasks.length ? tasks : ['  (none registered)']),
    '',
  ].join('\n');
}
