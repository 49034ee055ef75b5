/**
 * V8 heap tuning for the `ts-celery worker` process (`worker_heap_growing_percent`).
 *
 * A worker holding its prefetch window (4,000 messages at `-c 1000`) keeps every waiting message
 * alive across young-generation collections, so each one is promoted to the old generation and
 * dies there. V8 lets the old generation grow to up to 4× what survived its last full collection
 * before collecting it again (the factor rises while collections are cheap), so a draining worker's
 * heap swung to ~100 MB used for ~25 MB live. Capping the factor trades full collections for
 * memory: in a drain of 20,000 no-op tasks at prefetch 4,000 (compiled JS), 2× (100 %, the default)
 * kept the peak RSS at 159–166 MB instead of 195–199 MB for 2–5 % more CPU, and 1.5× (50 %) at
 * 149–152 MB for 15–20 % more CPU (scripts/bench/README.md).
 *
 * Applied by the CLI only: an application that embeds a `Worker` owns its process's V8 flags.
 * A `--heap-growing-percent` already given to node (command line or NODE_OPTIONS) wins.
 */
import { setFlagsFromString } from 'node:v8';

/** Sets V8's heap growing factor for this process, unless node was started with one. Returns what was applied. */
export function tuneWorkerHeap(growingPercent: number | null): number | null {
  if (growingPercent === null) return null;
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((arg) => /--heap[-_]growing[-_]percent/.test(arg));
  if (given) return null;
  // A GC heuristic read at every full collection, so it takes effect at run time.
  setFlagsFromString(`--heap-growing-percent=${Math.round(growingPercent)}`);
  return growingPercent;
}
