/**
 * ts-celery as a new user gets it: the packed tarball, installed into a fresh project with a
 * real `npm install`, used from plain Node (ESM and CommonJS), type-checked by the consumer's own
 * strict compiler options, and its `ts-celery worker` running tasks sent by Python Celery 5.7.
 * One pack and one install for the whole file; the workers start side by side.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { cleanEnv, createPackedProject, ROOT, run, type PackedProject } from '../../scripts/packed-project.js';
import { runPythonClient } from '../helpers/python.js';
import { AMQP_URL, deleteQueues, REDIS_URL, uniqueName } from '../helpers/services.js';
import { celeryNodeExample, migrateExample } from '../celery-node/readme.js';

const CONSUMER_FILES = join(ROOT, 'test', 'package', 'consumer');
const TSC = join(ROOT, 'node_modules', '.bin', 'tsc');
const repoPackage = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> };

interface CliWorker {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** `npx ts-celery worker -A <app>` in the project, in its own process group; resolves once ready. */
async function startWorker(project: PackedProject, app: string, queue: string, extraArgs: string[] = []): Promise<CliWorker> {
  const env = cleanEnv({ CONSUMER_BROKER: AMQP_URL, CONSUMER_BACKEND: REDIS_URL, CONSUMER_QUEUE: queue });
  const child = spawn('npx', ['ts-celery', 'worker', '-A', app, '-l', 'info', '-n', `${queue}@%h`, ...extraArgs], {
    cwd: project.dir,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const worker: CliWorker = {
    child,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      process.kill(-child.pid!, 'SIGTERM');
      const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker for ${app} not ready within 30 s:\n${out}`)), 30_000);
    const check = (): void => {
      if (/ ready\.$/m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`worker for ${app} exited before ready:\n${out}`));
    });
  });
  return worker;
}

describe('the npm package, installed from its tarball into a fresh project', function () {
  this.timeout(240_000);
  let project: PackedProject;
  const queues: string[] = [];

  before(async () => {
    project = await createPackedProject({
      copyFrom: CONSUMER_FILES,
      devDependencies: { '@types/node': repoPackage.devDependencies['@types/node']! },
    });
  });
  after(async () => {
    project?.remove();
    await deleteQueues(...queues);
  });

  it('holds only dist/, bin/, the README, LICENSE, CHANGELOG and package.json', () => {
    const top = [...new Set(project.pack.files.map((f) => (f.includes('/') ? `${f.split('/')[0]}/` : f)))].sort();
    expect(top).to.deep.equal(['CHANGELOG.md', 'LICENSE', 'README.md', 'bin/', 'dist/', 'package.json']);
    expect(project.pack.files).to.include.members(['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'bin/ts-celery.js', 'dist/compat/celery-node/index.js', 'dist/compat/celery-node/index.d.ts']);
    expect(project.pack.files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).to.deep.equal([]);
    expect(project.pack.version).to.equal(repoPackage.version);
  });

  it('works from plain Node: ESM import and CommonJS require() give the same module', async () => {
    writeFileSync(join(project.dir, 'check-esm.mjs'), "import { Celery, TaskError } from 'ts-celery';\nconsole.log(typeof Celery, typeof TaskError);\n");
    writeFileSync(
      join(project.dir, 'check-cjs.cjs'),
      "const tc = require('ts-celery');\nimport('ts-celery').then((esm) => console.log(typeof tc.Celery, tc.Celery === esm.Celery));\n",
    );
    const [esm, cjs] = await Promise.all([
      run(process.execPath, ['check-esm.mjs'], { cwd: project.dir }),
      run(process.execPath, ['check-cjs.cjs'], { cwd: project.dir }),
    ]);
    expect(esm.stderr).to.equal('');
    expect(esm.stdout.trim()).to.equal('function function');
    expect(cjs.stdout.trim(), cjs.stderr).to.equal('function true');
  });

  it('ts-celery/celery-node: ESM import and CommonJS require() give the same module, with celery-node\'s names', async () => {
    writeFileSync(
      join(project.dir, 'check-cn.cjs'),
      "const cn = require('ts-celery/celery-node');\n" +
        "import('ts-celery/celery-node').then((esm) => console.log(typeof cn.createClient, typeof cn.createWorker, cn.Client === esm.Client, esm.default.createWorker === cn.createWorker, cn.createClient().conf.CELERY_QUEUE));\n",
    );
    const r = await run(process.execPath, ['check-cn.cjs'], { cwd: project.dir });
    expect(r.stdout.trim(), r.stderr).to.equal('function function true true celery');
  });

  it("type-checks a strict consumer (nodenext and bundler resolution, skipLibCheck off), delay() typed", async () => {
    const [nodenext, bundler] = await Promise.all([
      run(TSC, ['-p', 'tsconfig.nodenext.json'], { cwd: project.dir }),
      run(TSC, ['-p', 'tsconfig.bundler.json'], { cwd: project.dir }),
    ]);
    expect(nodenext.code, `tsc (nodenext):\n${nodenext.stdout}${nodenext.stderr}`).to.equal(0);
    expect(bundler.code, `tsc (bundler):\n${bundler.stdout}${bundler.stderr}`).to.equal(0);
    // The @ts-expect-error line in consumer.ts is what makes delay('2', 3) compile: without it, tsc must fail.
    const source = readFileSync(join(project.dir, 'consumer.ts'), 'utf8');
    writeFileSync(join(project.dir, 'consumer.ts'), source.replace(/^\s*\/\/ @ts-expect-error.*$/m, ''));
    const untyped = await run(TSC, ['-p', 'tsconfig.nodenext.json'], { cwd: project.dir });
    writeFileSync(join(project.dir, 'consumer.ts'), source);
    expect(untyped.stdout).to.match(/consumer\.ts\(\d+,\d+\): error TS2345: Argument of type 'string' is not assignable to parameter of type 'number'/);
  });

  it('npx ts-celery --version prints the package version', async () => {
    const r = await run('npx', ['ts-celery', '--version'], { cwd: project.dir });
    expect(r.stdout.trim()).to.equal(repoPackage.version);
  });

  it('npx ts-celery worker runs a plain-JS ESM app (top-level await) and a TypeScript one: tasks sent by Python Celery 5.7 return', async () => {
    const jsQueue = uniqueName('pkg-js');
    const tsQueue = uniqueName('pkg-ts');
    queues.push(jsQueue, tsQueue);
    const workers = await Promise.all([startWorker(project, 'tasks.js', jsQueue), startWorker(project, 'tasks.ts', tsQueue)]);
    try {
      const [js, ts] = await Promise.all([
        runPythonClient<number>(['send', 'consumer.add', '--args', '[2, 3]', '--queue', jsQueue, '--get', '--timeout', '20']),
        runPythonClient<number>(['send', 'consumer.multiply', '--args', '[6, 7]', '--queue', tsQueue, '--get', '--timeout', '20']),
      ]);
      expect(js.celery_version).to.match(/^5\.7\./);
      expect([js.state, js.result]).to.deep.equal(['SUCCESS', 5]);
      expect([ts.state, ts.result]).to.deep.equal(['SUCCESS', 42]);
      expect(workers[0]!.output()).to.match(/\. consumer\.add\n/);
      expect(workers[1]!.output()).to.match(/\. consumer\.multiply\n/);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  });

  it("celery-node's README worker and client run from the installed package with plain Node, the import changed", async () => {
    const queue = uniqueName('pkg-cn');
    queues.push(queue);
    writeFileSync(join(project.dir, 'cn-worker.cjs'), migrateExample(celeryNodeExample('Worker'), AMQP_URL, AMQP_URL, queue));
    writeFileSync(join(project.dir, 'cn-client.cjs'), migrateExample(celeryNodeExample('Client'), AMQP_URL, AMQP_URL, queue));
    const worker = spawn(process.execPath, ['cn-worker.cjs'], { cwd: project.dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    worker.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    worker.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((resolve) => worker.on('exit', () => resolve()));
    try {
      const deadline = Date.now() + 20_000;
      while (!/ ready\.$/m.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(out).to.match(/ ready\.$/m);
      const client = await run(process.execPath, ['cn-client.cjs'], { cwd: project.dir, timeoutMs: 20_000 });
      expect([client.code, client.stdout.trim()], client.stderr).to.deep.equal([0, '3']);
    } finally {
      worker.kill('SIGTERM');
      await exited;
    }
    expect(out).to.contain('Warm shutdown');
  });

  it('npx ts-celery worker -P threads: each thread of the built package loads a JS app and a TypeScript one itself', async () => {
    const jsQueue = uniqueName('pkg-js-threads');
    const tsQueue = uniqueName('pkg-ts-threads');
    queues.push(jsQueue, tsQueue);
    const threads = ['-P', 'threads', '-c', '2'];
    const workers = await Promise.all([startWorker(project, 'tasks.js', jsQueue, threads), startWorker(project, 'tasks.ts', tsQueue, threads)]);
    try {
      const [js, ts] = await Promise.all([
        runPythonClient<number>(['send', 'consumer.add', '--args', '[2, 3]', '--queue', jsQueue, '--get', '--timeout', '20']),
        runPythonClient<number>(['send', 'consumer.multiply', '--args', '[6, 7]', '--queue', tsQueue, '--get', '--timeout', '20']),
      ]);
      expect([js.state, js.result]).to.deep.equal(['SUCCESS', 5]);
      expect([ts.state, ts.result]).to.deep.equal(['SUCCESS', 42]);
      for (const w of workers) expect(w.output()).to.match(/\.> concurrency: 2 \(threads\)/);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  });

  it('a broken app: the built CLI names the file, line and cause, and exits 1', async () => {
    writeFileSync(join(project.dir, 'syntax.js'), "import { Celery } from 'ts-celery';\nexport const app = new Celery('x';\n");
    writeFileSync(join(project.dir, 'throws.ts'), "const port: number = 5672;\n\nthrow new RangeError(`no broker on ${port}`);\n");
    writeFileSync(join(project.dir, 'typo.ts'), 'export const app = {\n  name: "x",,\n};\n');
    const cli = (app: string) => run('npx', ['ts-celery', 'worker', '-A', app], { cwd: project.dir });
    const [syntax, throws, typo] = await Promise.all([cli('syntax.js'), cli('throws.ts'), cli('typo.ts')]);
    for (const r of [syntax, throws, typo]) expect(r.code, r.stderr).to.equal(1);
    expect(syntax.stderr).to.match(/syntax\.js failed to load: SyntaxError: .*\(at \S*syntax\.js:2\)/);
    expect(throws.stderr).to.match(/throws\.ts failed to load: RangeError: no broker on 5672 \(at \S*throws\.ts:3:7\)/);
    expect(typo.stderr).to.match(/typo\.ts failed to load: \S*typo\.ts:2:12: /);
  });
});
