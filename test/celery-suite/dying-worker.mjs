// For harness.test.ts: runs the real `ts-celery worker` with the arguments it
// is given and SIGKILLs it DIE_AFTER_MS after it said "ready.", as a crash
// mid-suite would. Exits with the worker's signal.
import { spawn } from 'node:child_process';

const delay = Number(process.env.DIE_AFTER_MS ?? 3000);
const child = spawn(process.execPath, process.argv.slice(2), { stdio: ['ignore', 'pipe', 'pipe'] });
let armed = false;
const watch = (d) => {
  process.stdout.write(d);
  if (!armed && / ready\.$/m.test(d.toString())) {
    armed = true;
    setTimeout(() => child.kill('SIGKILL'), delay);
  }
};
child.stdout.on('data', watch);
child.stderr.on('data', watch);
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGKILL' ? 137 : 1)));
