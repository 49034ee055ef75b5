/**
 * `npm run bench:startup`: how long ts-celery takes to start, as a user installs it, next to
 * Python Celery 5.7 on the same machine.
 *
 * Packs this checkout and installs the tarball into a fresh project (scripts/packed-project.ts),
 * then measures, each `--runs` times (default 7) in turn, reporting the median and the fastest:
 * - `import('ts-celery')` in a new `node` process (the import alone, and the whole process),
 *   next to `import celery` in Python;
 * - a worker from spawn to its "ready." line, with the RSS of its process tree then: the built
 *   CLI on a plain-JS app and on a TypeScript app (tsx), `npx ts-celery` (npm's own start-up
 *   included), the checkout's CLI (TypeScript source through tsx), and `celery worker`
 *   (prefork -c 2, Celery's default here, and `--pool solo`).
 * Uses RabbitMQ vhost ts-celery-test and Redis DB 11, one queue per run (deleted).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { cleanEnv, createPackedProject, run } from '../packed-project.js';
import { DEFAULT_BROKER, DEFAULT_REDIS, ROOT } from './config.js';
import { processTree, rssMb, startProc } from './procs.js';
import { summarize } from './stats.js';

const { values: opts } = parseArgs({ options: { runs: { type: 'string', default: '7' } } });
const RUNS = Number(opts.runs);
const CELERY = join(ROOT, '.venv', 'bin', 'celery');
const PYTHON = join(ROOT, '.venv', 'bin', 'python');

const PY_APP = `from celery import Celery
import os
app = Celery('pyapp', broker=os.environ['CONSUMER_BROKER'], backend=os.environ['CONSUMER_BACKEND'])
app.conf.task_default_queue = os.environ['CONSUMER_QUEUE']

@app.task(name='consumer.add')
def add(x, y):
    return x + y
`;

interface Sample {
  ms: number;
  rssMb?: number;
}

/** Spawn to " ready." (Celery's and ts-celery's last start-up line), then the tree's RSS. */
async function timeToReady(command: string, args: string[], cwd: string, queue: string): Promise<Sample> {
  const env = cleanEnv({ CONSUMER_BROKER: DEFAULT_BROKER, CONSUMER_BACKEND: DEFAULT_REDIS, CONSUMER_QUEUE: queue });
  const started = performance.now();
  const proc = startProc(command, [...args, '-Q', queue], { cwd, env });
  try {
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (/ ready\.\s*$/m.test(proc.log())) resolve();
      };
      proc.child.stdout!.on('data', check);
      proc.child.stderr!.on('data', check);
      void proc.exited.then(() => reject(new Error(`${command} ${args.join(' ')} exited before ready:\n${proc.log()}`)));
    });
    const ms = performance.now() - started;
    await new Promise((r) => setTimeout(r, 300)); // let pool processes settle
    return { ms, rssMb: rssMb(processTree(proc.pid)) };
  } finally {
    await proc.stop(10_000);
  }
}

async function timed(command: string, args: string[], cwd: string): Promise<Sample & { inner: number }> {
  const started = performance.now();
  const r = await run(command, args, { cwd });
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')}: ${r.stderr}`);
  return { ms: performance.now() - started, inner: Number(r.stdout.trim()) };
}

function row(name: string, samples: Sample[], note = ''): string {
  const ms = summarize(samples.map((s) => s.ms));
  const rss = samples.every((s) => s.rssMb !== undefined) ? `${summarize(samples.map((s) => s.rssMb!)).median.toFixed(0)} MB` : '';
  return `| ${name} | ${ms.median.toFixed(0)} ms | ${ms.min.toFixed(0)} ms | ${rss} | ${note} |`;
}

async function main(): Promise<void> {
  process.stdout.write(`Packing and installing ts-celery into a fresh project...\n`);
  const project = await createPackedProject({ copyFrom: join(ROOT, 'test', 'package', 'consumer') });
  writeFileSync(join(project.dir, 'pyapp.py'), PY_APP);
  const queues: string[] = [];
  const queue = (): string => {
    const q = `startup.${process.pid}.${queues.length}`;
    queues.push(q);
    return q;
  };
  const bin = join(project.dir, 'node_modules', '.bin', 'ts-celery');
  const rows: Array<{ name: string; note?: string; measure: () => Promise<Sample> }> = [
    {
      name: "`import('ts-celery')`, the import alone",
      note: 'whole `node` process in the next row',
      measure: async () => {
        const r = await timed(process.execPath, ['--input-type=module', '-e', "const t = performance.now(); await import('ts-celery'); console.log(performance.now() - t)"], project.dir);
        return { ms: r.inner };
      },
    },
    {
      name: "`node -e \"await import('ts-celery')\"`, the whole process",
      measure: () => timed(process.execPath, ['--input-type=module', '-e', "await import('ts-celery')"], project.dir),
    },
    {
      name: 'Python: `import celery`, the import alone',
      measure: async () => {
        const r = await timed(PYTHON, ['-c', 'import time; t = time.perf_counter(); import celery; print((time.perf_counter() - t) * 1000)'], project.dir);
        return { ms: r.inner };
      },
    },
    { name: 'ts-celery worker, plain-JS app (`node_modules/.bin/ts-celery worker -A tasks.js`)', measure: () => timeToReady(process.execPath, [bin, 'worker', '-A', 'tasks.js', '-l', 'info'], project.dir, queue()) },
    { name: 'ts-celery worker, TypeScript app (`-A tasks.ts`, tsx)', measure: () => timeToReady(process.execPath, [bin, 'worker', '-A', 'tasks.ts', '-l', 'info'], project.dir, queue()) },
    { name: '`npx ts-celery worker -A tasks.js`', note: "npm's own start-up included", measure: () => timeToReady('npx', ['ts-celery', 'worker', '-A', 'tasks.js', '-l', 'info'], project.dir, queue()) },
    {
      name: 'ts-celery worker from a checkout (source through tsx, `-A tasks.ts`)',
      measure: () => timeToReady(process.execPath, [join(ROOT, 'bin', 'ts-celery.js'), 'worker', '-A', join(project.dir, 'tasks.ts'), '-l', 'info'], project.dir, queue()),
    },
    { name: 'Celery 5.7 `celery -A pyapp worker` (prefork, -c 2)', measure: () => timeToReady(CELERY, ['-A', 'pyapp', 'worker', '-l', 'info', '-c', '2'], project.dir, queue()) },
    { name: 'Celery 5.7 `celery -A pyapp worker --pool solo`', measure: () => timeToReady(CELERY, ['-A', 'pyapp', 'worker', '-l', 'info', '--pool', 'solo'], project.dir, queue()) },
  ];
  const samples = rows.map(() => [] as Sample[]);
  try {
    // Interleaved, so a busy moment on the machine spreads over every row.
    for (let i = 0; i < RUNS; i++) {
      for (const [j, r] of rows.entries()) samples[j]!.push(await r.measure());
      process.stdout.write(`run ${i + 1}/${RUNS} done\n`);
    }
  } finally {
    project.remove();
    const conn = await amqp.connect(DEFAULT_BROKER);
    const ch = await conn.createChannel();
    for (const q of queues) await ch.deleteQueue(q).catch(() => undefined);
    await conn.close();
  }
  const lines = [
    `Node ${process.version}, ${RUNS} runs each, interleaved`,
    '',
    '| what | median | fastest | RSS at ready (median, process tree) | note |',
    '|---|---|---|---|---|',
    ...rows.map((r, j) => row(r.name, samples[j]!, r.note)),
  ];
  process.stdout.write(`\n${lines.join('\n')}\n`);
}

await main();
