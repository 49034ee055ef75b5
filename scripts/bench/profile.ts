/**
 * Reads a V8 `.cpuprofile` (from `node --cpu-prof`, see `npm run bench -- --profile`)
 * and lists the functions with the most self time: where a worker's CPU goes.
 *
 *   tsx scripts/bench/profile.ts <file.cpuprofile> [top]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './config.js';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  /** Microseconds on the system's monotonic clock (the one process.hrtime() reads). */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Epoch ms -> the profile's clock (µs, monotonic), from this process's view of both clocks. */
export function epochToMonotonicUs(epochMs: number): number {
  const offsetUs = (performance.timeOrigin + performance.now()) * 1000 - Number(process.hrtime.bigint() / 1000n);
  return epochMs * 1000 - offsetUs;
}

/** Coarse owner of a function, from its script URL. */
function category(name: string, url: string): string {
  if (name === '(garbage collector)') return 'garbage collection';
  if (name === '(program)' || (!url && /^\(/.test(name))) return 'V8/native (program)';
  if (url.startsWith('src/')) return 'ts-celery (src/)';
  if (url.startsWith('dist/')) return 'ts-celery (dist/)';
  if (url.startsWith('scripts/bench/') || url.startsWith('bench-results/js/')) return 'benchmark task code';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:') || !url) return 'Node.js core / natives';
  return 'other';
}

export interface HotFunction {
  name: string;
  /** file:line, relative to the repository. */
  where: string;
  selfMs: number;
  /** Share of the non-idle time. */
  percent: number;
}

/** The profile file node wrote for process `pid` in `dir`, if any. */
export function profileOf(dir: string, pid: number): string | null {
  try {
    // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread (1 is tsx's loader).
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile') && f.includes(`.${pid}.`));
    const file = files.find((f) => f.includes(`.${pid}.0.`)) ?? files[0];
    return file ? join(dir, file) : null;
  } catch {
    return null;
  }
}

/** Self time by function and by owner (ts-celery, amqplib, ioredis, GC...). */
export interface HotReport {
  /** Non-idle ms inside the window. */
  busyMs: number;
  functions: HotFunction[];
  categories: Array<{ name: string; selfMs: number; percent: number }>;
}

/**
 * The `top` functions by self time. With `window` (µs on the profile's clock,
 * see epochToMonotonicUs) only samples inside it count: the drain, without
 * start-up (module loading) and shutdown.
 */
export function hotFunctions(file: string, top = 20, window?: { fromUs: number; toUs: number }): HotReport {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byNode = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const selfUs = new Map<string, { name: string; where: string; us: number }>();
  const byCategory = new Map<string, number>();
  let busyUs = 0;
  let t = profile.startTime;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (window && (t < window.fromUs || t > window.toUs)) return;
    const frame = byNode.get(id);
    if (!frame || frame.functionName === '(idle)') return;
    busyUs += dt;
    const url = frame.url.startsWith('file://') ? relative(ROOT, new URL(frame.url).pathname) : frame.url;
    const where = url ? `${url}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName}@${where}`;
    const entry = selfUs.get(key) ?? { name: frame.functionName || '(anonymous)', where, us: 0 };
    entry.us += dt;
    selfUs.set(key, entry);
    const cat = category(frame.functionName, url);
    byCategory.set(cat, (byCategory.get(cat) ?? 0) + dt);
  });
  const share = (us: number): number => (busyUs ? (100 * us) / busyUs : 0);
  const functions = [...selfUs.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, percent: share(e.us) }));
  const categories = [...byCategory.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([name, us]) => ({ name, selfMs: us / 1000, percent: share(us) }));
  return { busyMs: busyUs / 1000, functions, categories };
}

/** A printable summary of hotFunctions(). */
export function formatHot(file: string, top = 20, window?: { fromUs: number; toUs: number }): string {
  const { busyMs, functions, categories } = hotFunctions(file, top, window);
  const lines = [`${relative(ROOT, file)}: ${busyMs.toFixed(0)} ms busy (not idle)${window ? ' during the measured window' : ''}`];
  lines.push(`  by owner: ${categories.map((c) => `${c.name} ${c.percent.toFixed(0)} %`).join(', ')}`);
  lines.push('  self ms   share  function (file:line)');
  for (const f of functions) lines.push(`  ${f.selfMs.toFixed(1).padStart(7)}  ${f.percent.toFixed(1).padStart(5)} %  ${f.name} ${f.where ? `(${f.where})` : ''}`);
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: tsx scripts/bench/profile.ts <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  process.stdout.write(`${formatHot(file, Number(top ?? 25))}\n`);
}
