/**
 * The `ts-js` and `raw-js` rows run on plain `node`, with no tsx: the normal way to deploy a
 * Node worker (`npm run build`, then the compiled app). ts-celery's CLI loads tsx only for a
 * TypeScript app (bin/ts-celery.js, src/app/module-loader.ts), and tsx's loader thread alone is
 * about 35 MB of RSS, so the tsx rows measure the development set-up.
 *
 * Built once per bench run, before the first such row: ts-celery itself with `npm run build`
 * (dist/, what the published package runs), then the bench app and the raw consumer with
 * tsc (tsconfig.js.json) into bench-results/js/. The compiled app's `import 'ts-celery'` resolves
 * through package.json's exports to dist/, and the worker is dist/cli/main.js (js-worker.mjs),
 * so app and worker share one instance of the compiled library.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { BENCH_DIR, RESULTS_DIR, ROOT } from './config.js';

/** Where the compiled bench files go (bench-results/ is git-ignored). */
export const JS_DIR = join(RESULTS_DIR, 'js');

let built = false;

/** Builds dist/ and the compiled bench app and raw consumer, once per process. */
export function ensureJsBuild(progress: (m: string) => void = () => undefined): void {
  if (built) return;
  const started = performance.now();
  execFileSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(BENCH_DIR, 'tsconfig.js.json')], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  built = true;
  progress(`compiled dist/ and the bench app to JavaScript for the -js rows (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
