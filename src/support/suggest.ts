/**
 * "Did you mean ...?" hints for misspelt names: settings (`brokr_url`), task
 * options (`maxRetrys`), applyAsync options, `task_queues` keys, time zones.
 */

/** Levenshtein distance between two strings. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

export interface SuggestOptions {
  /** Applied to the input and to every known name before comparing (e.g. lower-case, drop `_`). */
  normalize?: (name: string) => string;
  /** Other spellings of the (normalized) input worth trying too, e.g. with a `task_` prefix. */
  variants?: (normalized: string) => string[];
}

/**
 * The known name closest to `input`, or null when none is close enough to be
 * a plausible typo (at most 3 edits, or a third of the name for long names).
 */
export function closestName(input: string, known: Iterable<string>, options: SuggestOptions = {}): string | null {
  const normalize = options.normalize ?? ((s: string) => s);
  const target = normalize(input);
  const tries = [target, ...(options.variants?.(target) ?? [])];
  let best: string | null = null;
  let bestScore = Infinity;
  for (const name of known) {
    const candidate = normalize(name);
    for (const t of tries) {
      const score = editDistance(t, candidate);
      if (score < bestScore) [best, bestScore] = [name, score];
    }
  }
  return best !== null && bestScore <= Math.max(3, target.length / 3) ? best : null;
}

/** `: did you mean "x"?` for the closest known name, or `''` when nothing is close. */
export function didYouMean(input: string, known: Iterable<string>, options?: SuggestOptions): string {
  const best = closestName(input, known, options);
  return best === null ? '' : `: did you mean ${JSON.stringify(best)}?`;
}

/** Compares camelCase and snake_case spellings alike: `max_retries` ~ `maxRetries`. */
export function looseCase(name: string): string {
  return name.toLowerCase().replace(/[_-]/g, '');
}
