/**
 * `npm run test:celery-suite [-- options]`: Celery 5.7.0's own integration
 * suite (test_inspect.py, test_tasks.py, test_canvas.py), unchanged, with
 * `ts-celery worker` as the suite's session worker. See ./README.md.
 *
 *   --python-worker     Celery's own worker instead, embedded in pytest as in Celery's CI: the baseline,
 *                       for people, not CI
 *   --python-worker=subprocess
 *                       Celery's own worker as a subprocess (`celery worker`), started and stopped as
 *                       ts-celery's is: shows which tests need the worker inside the pytest process
 *   --full              every test with Celery's own timeouts and reruns (no fail-fast for tests
 *                       outside the baseline): the exact score, slower
 *   --update-baseline   record the tests that pass in baseline.json (with --full, tests outside the
 *                       baseline get their full time first)
 *   -- <pytest args>    e.g. a test id or -k EXPR, in place of the three files
 *
 * Exit codes: 0 = the score was reported and no baseline test regressed;
 * 1 = a test of baseline.json did not pass; 2 = a harness fault (checksum,
 * services, worker not ready or died, nothing ran).
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisNode } from '../helpers/redis-node.js';
import { rabbitmqctl } from '../helpers/services.js';
import { closingLine, failureGroups, newlyPassing, regressions, table, type Baseline, type SuiteResults } from './report.js';
import { ensureSuiteDeps, ensureSuiteSource, HarnessFault } from './sdist.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const PYTHON = join(ROOT, '.venv', 'bin', 'python');
const CACHE = join(HERE, '.cache');

/** The RabbitMQ vhost this suite uses, and nothing else does. */
export const SUITE_VHOST = 'ts-celery-suite';
/**
 * The database on the suite's own redis-server (see {@link startSuiteRedis}). The
 * plugin also points the suite's `get_redis_connection()` (always DB 0) at it.
 */
export const SUITE_REDIS_DB = 13;
const BROKER = `pyamqp://guest:guest@127.0.0.1:5672/${SUITE_VHOST}`;
const FILES = ['t/integration/test_inspect.py', 't/integration/test_tasks.py', 't/integration/test_canvas.py'];

/**
 * Tests not in baseline.json are expected to fail: in CI they run once, at most
 * this long (s), and end as soon as the worker logs that it declined their work.
 * Celery's own passing tests take under 10 s here but for 14 of 316 (tests in the
 * baseline keep Celery's timeouts); --full runs everything at full length.
 */
const FAIL_TIMEOUT = 10;
/** No test runs longer than this (s), whatever its marker says (Celery's are 300 s at most). */
const TIMEOUT_CAP = 300;
/** The whole pytest run (s): past this the run is a harness fault. */
const RUN_TIMEOUT = 50 * 60;

const log = (line: string): void => void process.stdout.write(`[celery-suite] ${line}\n`);

async function ensureVhost(): Promise<void> {
  const vhosts = (await rabbitmqctl(['-q', 'list_vhosts', 'name'])).split('\n').map((l) => l.trim());
  if (!vhosts.includes(SUITE_VHOST)) {
    log(`creating RabbitMQ vhost ${SUITE_VHOST}`);
    await rabbitmqctl(['-q', 'add_vhost', SUITE_VHOST]);
  }
  await rabbitmqctl(['-q', 'set_permissions', '-p', SUITE_VHOST, 'guest', '.*', '.*', '.*']);
}

/**
 * A redis-server of the suite's own (free port, no password, no persistence, its
 * directory in the run's folder), empty at every start. Not the shared :6379: Celery's
 * `test_ignoring_result_no_subscriptions` compares the server's `PUBSUB CHANNELS`
 * before and after a send, and pub/sub channels belong to the whole server, not to a
 * database, so any other test waiting on a result there (npm test runs mocha's suites
 * beside this one) would show up in it. Stopped when this process exits, however it exits.
 */
async function startSuiteRedis(dir: string): Promise<RedisNode> {
  const node = new RedisNode({ auth: false, dir });
  const stop = (): void => void node.stop().catch(() => {});
  process.once('exit', stop); // process.exit() below, on every path
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      stop();
      process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const)[signal]);
    });
  }
  try {
    await node.start();
  } catch (err) {
    throw new HarnessFault(`the suite's own redis-server did not start: ${(err as Error).message}`);
  }
  log(`own redis-server on 127.0.0.1:${node.port} (dir ${relative(ROOT, dir)})`);
  return node;
}

function runPytest(source: string, args: string[], env: NodeJS.ProcessEnv, logFile: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(logFile);
    const child = spawn(PYTHON, ['-m', 'pytest', ...args], { cwd: source, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const forward = (d: Buffer): void => {
      out.write(d);
      process.stdout.write(d);
    };
    child.stdout.on('data', forward);
    child.stderr.on('data', forward);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new HarnessFault(`pytest did not finish within ${RUN_TIMEOUT / 60} min; log: ${logFile}`));
    }, RUN_TIMEOUT * 1000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      out.end();
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

function readJson<T>(file: string): T | null {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : null;
}

async function main(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const selection = dash >= 0 ? argv.slice(dash + 1) : [];
  const known = ['--python-worker', '--python-worker=subprocess', '--update-baseline', '--full'];
  const pythonSubprocess = own.includes('--python-worker=subprocess');
  const pythonWorker = own.includes('--python-worker') || pythonSubprocess;
  const updateBaseline = own.includes('--update-baseline');
  const full = own.includes('--full');
  const unknown = own.filter((a) => !known.includes(a));
  if (unknown.length) throw new HarnessFault(`unknown option ${unknown.join(' ')} (known: ${known.join(', ')}, -- <pytest args>)`);
  if (pythonWorker && updateBaseline) throw new HarnessFault('--update-baseline records what passes against ts-celery; drop --python-worker');

  const started = Date.now();
  const source = ensureSuiteSource(PYTHON, CACHE, log);
  ensureSuiteDeps(PYTHON, log);
  await ensureVhost();

  const mode = pythonSubprocess ? 'python-subprocess' : pythonWorker ? 'python' : 'ts';
  const runDir = join(CACHE, `run-${mode}`);
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const redis = await startSuiteRedis(join(runDir, 'redis'));
  const resultsFile = join(runDir, 'results.json');
  const workerLog = join(runDir, 'worker.log');
  const baselineFile = join(HERE, 'baseline.json');

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEST_BROKER: BROKER,
    TEST_BACKEND: redis.url(SUITE_REDIS_DB),
    REDIS_HOST: '127.0.0.1',
    REDIS_PORT: String(redis.port),
    CELERY_SUITE_REDIS_DB: String(SUITE_REDIS_DB),
    CELERY_SUITE_RESULTS: resultsFile,
    CELERY_SUITE_WORKER_LOG: workerLog,
    PYTHONPATH: [join(HERE, 'plugin'), process.env.PYTHONPATH].filter(Boolean).join(':'),
    PYTHONDONTWRITEBYTECODE: '1',
  };
  const args = ['-p', 'celery.contrib.pytest', '-p', 'ts_celery_suite', '-p', 'no:cacheprovider', '--tb=line', `--suite-timeout-cap=${TIMEOUT_CAP}`];
  if (pythonSubprocess) {
    env.CELERY_SUITE_WORKER_CMD = JSON.stringify([
      join(ROOT, '.venv', 'bin', 'celery'), '-A', 'ts_celery_suite_pyapp', 'worker', '-P', 'prefork', '-l', 'info',
      '--without-mingle', '--without-gossip', '--without-heartbeat',
    ]);
    log(`Celery's own worker as a subprocess (celery worker -P prefork -c 1) on ${SUITE_VHOST}, its own Redis (:${redis.port}/${SUITE_REDIS_DB})`);
  } else if (pythonWorker) {
    log(`Celery's own worker (in the pytest process, prefork -c 1) on ${SUITE_VHOST}, its own Redis (:${redis.port}/${SUITE_REDIS_DB})`);
  } else {
    // CELERY_SUITE_WORKER_CMD in the environment wins: the harness's own tests use it for broken workers.
    env.CELERY_SUITE_WORKER_CMD ??= JSON.stringify([process.execPath, join(ROOT, 'bin', 'ts-celery.js'), 'worker', '-A', join(HERE, 'tasks'), '-l', 'info']);
    env.CELERY_SUITE_SKIPS = join(HERE, 'skips.txt');
    if (!selection.length) env.CELERY_SUITE_CHECK_SKIPS = '1';
    env.CELERY_SUITE_BASELINE = baselineFile;
    if (!full) args.push(`--suite-fail-timeout=${FAIL_TIMEOUT}`, '--suite-fail-fast');
    log(`ts-celery worker -A test/celery-suite/tasks -c 1 -n gen<pytest pid>@${hostname()} on ${SUITE_VHOST}, its own Redis (:${redis.port}/${SUITE_REDIS_DB})`);
  }
  args.push(...(selection.length ? selection : FILES));

  const code = await runPytest(source, args, env, join(runDir, 'pytest.log'));
  const results = readJson<SuiteResults>(resultsFile);
  if (!results) throw new HarnessFault(`pytest exited with ${code} and the plugin wrote no results (${resultsFile}); log: ${join(runDir, 'pytest.log')}`);
  if (results.faults.length) {
    throw new HarnessFault(`${results.faults.join('\n')}\nworker log: ${relative(ROOT, workerLog)}`);
  }
  // pytest: 0 all passed, 1 some failed, 5 nothing collected; anything else is an interrupted or broken run.
  if (code === 5) throw new HarnessFault('pytest collected no test');
  if (code !== 0 && code !== 1) throw new HarnessFault(`pytest exited with code ${code} (interrupted, usage or internal error); log: ${join(runDir, 'pytest.log')}`);
  const executed = Object.values(results.outcomes).filter((o) => o !== 'skipped').length;
  if (executed === 0) throw new HarnessFault('no test was executed');

  process.stdout.write(`\n${table(results)}\n\n`);
  let status = 0;
  if (!pythonWorker) {
    const groups = failureGroups(results);
    if (groups.length) {
      process.stdout.write('Failures by cause:\n');
      for (const g of groups) process.stdout.write(`  ${String(g.tests.length).padStart(3)}  ${g.message}\n`);
      process.stdout.write('\n');
    }
    const baseline = readJson<Baseline>(baselineFile);
    const fresh = newlyPassing(results, baseline);
    if (updateBaseline) {
      // Tests this run did not include (a selection) keep their entry; tests it ran are recorded as they did.
      const kept = (baseline?.passed ?? []).filter((id) => results.outcomes[id] === undefined);
      const dropped = (baseline?.passed ?? []).filter((id) => results.outcomes[id] !== undefined && !['passed', 'xpassed'].includes(results.outcomes[id]!));
      if (dropped.length) log(`dropped from baseline.json (did not pass now):\n  ${dropped.join('\n  ')}`);
      const passed = [...new Set([...kept, ...Object.entries(results.outcomes).filter(([, o]) => o === 'passed' || o === 'xpassed').map(([id]) => id)])].sort();
      const record: Baseline = {
        recorded: new Date().toISOString().slice(0, 10),
        note: 'Tests of Celery 5.7.0 t/integration that pass against ts-celery worker; npm run test:celery-suite fails when one of them stops passing. Update with --update-baseline.',
        passed,
      };
      writeFileSync(baselineFile, `${JSON.stringify(record, null, 1)}\n`);
      log(`baseline.json: ${passed.length} tests recorded`);
    } else if (baseline) {
      const lost = regressions(results, baseline, selection.length > 0);
      if (lost.length) {
        process.stdout.write(`REGRESSION: ${lost.length} test(s) of baseline.json did not pass:\n${lost.map((id) => `  ${id}: ${results.outcomes[id] ?? 'not run'} ${results.messages[id] ?? ''}`).join('\n')}\n\n`);
        status = 1;
      }
      if (fresh.length) log(`${fresh.length} test(s) pass that baseline.json does not list yet; record them with --update-baseline:\n  ${fresh.join('\n  ')}`);
    } else {
      log('no baseline.json: nothing to compare against (record one with --update-baseline)');
    }
  }
  log(`${mode === 'ts' ? 'ts-celery worker' : `Celery's own worker (${mode})`}: ${Math.round((Date.now() - started) / 1000)} s in all; logs in ${relative(ROOT, runDir)}/`);
  process.stdout.write(`${closingLine(results)}\n`);
  return status;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const message = err instanceof HarnessFault ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`\ncelery-suite: HARNESS FAULT: ${message}\n`);
    process.exit(2);
  },
);
