/**
 * The score: outcomes per test file, the closing line, the failures grouped
 * by their first line, and the comparison with the recorded baseline.
 */

/** What the pytest plugin (plugin/ts_celery_suite.py) writes. */
export interface SuiteResults {
  outcomes: Record<string, 'passed' | 'failed' | 'skipped' | 'xfailed' | 'xpassed'>;
  durations: Record<string, number>;
  messages: Record<string, string>;
  faults: string[];
}

/** baseline.json: the tests that passed against ts-celery when it was recorded. */
export interface Baseline {
  recorded: string;
  note: string;
  passed: string[];
}

export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
  xfailed: number;
  xpassed: number;
  seconds: number;
}

const empty = (): Counts => ({ passed: 0, failed: 0, skipped: 0, xfailed: 0, xpassed: 0, seconds: 0 });

/** Counts per file (`t/integration/test_tasks.py`) and in total. */
export function countByFile(results: SuiteResults): { files: Map<string, Counts>; total: Counts } {
  const files = new Map<string, Counts>();
  const total = empty();
  for (const [id, outcome] of Object.entries(results.outcomes)) {
    const file = id.split('::')[0]!;
    const c = files.get(file) ?? empty();
    files.set(file, c);
    c[outcome]++;
    total[outcome]++;
    const s = results.durations[id] ?? 0;
    c.seconds += s;
    total.seconds += s;
  }
  return { files, total };
}

const minutes = (s: number): string => `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;

/** The per-file table, as printed and as pasted into the README. */
export function table(results: SuiteResults): string {
  const { files, total } = countByFile(results);
  const rows = [...files.entries()].map(([file, c]) => [file, c]);
  rows.push(['total', total]);
  const lines = ['| file | passed | failed | skipped | xfailed | xpassed | time |', '|---|---|---|---|---|---|---|'];
  for (const [file, c] of rows as Array<[string, Counts]>) {
    lines.push(`| ${file} | ${c.passed} | ${c.failed} | ${c.skipped} | ${c.xfailed} | ${c.xpassed} | ${minutes(c.seconds)} |`);
  }
  return lines.join('\n');
}

/**
 * The closing line. xpassed tests count as passed and xfailed ones as skipped,
 * as pytest's own summary reads them.
 */
export function closingLine(results: SuiteResults): string {
  const { total } = countByFile(results);
  return `celery-suite: ${total.passed + total.xpassed} passed, ${total.failed} failed, ${total.skipped + total.xfailed} skipped`;
}

/** Failures grouped by their message, most frequent first (what blocks them). */
export function failureGroups(results: SuiteResults): Array<{ message: string; tests: string[] }> {
  const groups = new Map<string, string[]>();
  for (const [id, outcome] of Object.entries(results.outcomes)) {
    if (outcome !== 'failed') continue;
    // Ids and numbers differ per run; the rest of the message names the cause.
    const message = (results.messages[id] ?? '(no message)')
      .replace(/\[\d{4}-\d\d-\d\d [\d:,]+: (\w+)\/MainProcess\] /g, '$1 ')
      .replace(/Task [\w.]+\[[0-9a-f-]{36}\]/g, 'Task <task>')
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>')
      .replace(/\(([\w.]+|celery\.\w+ \(\w+\)) will not run\)/, '(<body> will not run)')
      .slice(0, 150);
    groups.set(message, [...(groups.get(message) ?? []), id]);
  }
  return [...groups.entries()].map(([message, tests]) => ({ message, tests })).sort((a, b) => b.tests.length - a.tests.length);
}

/**
 * Tests of the baseline that did not pass this time. A baseline test that was
 * not run counts too, unless only a selection of tests was run.
 */
export function regressions(results: SuiteResults, baseline: Baseline, selectionOnly = false): string[] {
  return baseline.passed.filter((id) => {
    const o = results.outcomes[id];
    if (o === undefined) return !selectionOnly;
    return o !== 'passed' && o !== 'xpassed';
  });
}

/** Tests that passed this time and are not in the baseline yet. */
export function newlyPassing(results: SuiteResults, baseline: Baseline | null): string[] {
  const known = new Set(baseline?.passed ?? []);
  return Object.entries(results.outcomes)
    .filter(([id, o]) => (o === 'passed' || o === 'xpassed') && !known.has(id))
    .map(([id]) => id)
    .sort();
}
