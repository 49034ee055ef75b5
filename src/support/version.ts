/**
 * The package version, read from package.json: the one place it is written. The CLI's
 * `--version` and the worker banner show it. The path is the same from `src/support/`
 * (a checkout) and `dist/support/` (an installed package).
 */
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** ts-celery's version, e.g. `0.1.0`. */
export const VERSION: string = pkg.version;
