/**
 * Noticing that the process that launched the worker went away.
 *
 * `npx ts-celery worker` and `npm run worker` run the worker as a grandchild
 * (npm -> sh -> node). On SIGTERM, which is what `docker stop` and many
 * supervisors send to the command they started, npm exits at once without
 * passing the signal on to the worker; the worker is re-parented and would
 * keep consuming with nothing left to stop it. Its parent pid changes when
 * that happens, so polling it once a second is enough to notice, with no
 * platform-specific API (Linux's PR_SET_PDEATHSIG is not reachable from Node).
 */

/** A running watch; `stop()` ends it. */
export interface ParentWatch {
  stop(): void;
}

/**
 * Calls `onGone(formerParentPid)` once, soon after the parent process exits.
 * Watches nothing when the worker was started by init/systemd directly or is
 * PID 1 itself (a container's entry point): there is no launcher to lose.
 */
export function watchParent(onGone: (formerParent: number) => void, intervalMs = 1000): ParentWatch {
  const parent = process.ppid;
  if (parent <= 1) return { stop: () => undefined };
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onGone(parent);
  }, intervalMs);
  timer.unref(); // never what keeps the process alive
  return { stop: () => clearInterval(timer) };
}
