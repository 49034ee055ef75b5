/**
 * Stubs for tasks that need an API ts-celery does not have yet. They are
 * registered under the suite's names, so a test that sends one fails at once
 * with a message naming what is missing and the issue that builds it (rather
 * than waiting for a result that never comes, or for "unregistered task").
 */

/**
 * Stored as Python's builtin `NotImplementedError`, so the suite's `get()`
 * raises it with this message, e.g. `needs canvas (issue #12): self.replace()`.
 */
export class MissingFeature extends Error {
  override name = 'NotImplementedError';
}

/** The issue that builds a missing feature, or null when no open issue does. */
export type IssueRef = number | null;

/**
 * A task body that fails with {@link MissingFeature}. It takes any positional
 * arguments; register it with `params` covering the Python keyword names.
 */
export function needs(what: string, feature: string, issue: IssueRef): (...args: unknown[]) => never {
  const where = issue === null ? 'no open issue builds it yet' : `issue #${issue}`;
  return () => {
    throw new MissingFeature(`ts-celery worker needs ${feature} (${where}): ${what}`);
  };
}
