/**
 * Celery's integration suite as downloaded: Celery 5.7.0's sdist from PyPI
 * (it holds `t/integration/`), checked against a pinned sha256 and extracted
 * under the git-ignored `.cache/`. Celery's test files are never copied into
 * this repository nor edited.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CELERY_VERSION = '5.7.0';
/** sha256 of celery-5.7.0.tar.gz as PyPI serves it (pip checked the download against the digest PyPI's index lists). */
export const CELERY_SDIST_SHA256 = '6a5dfcf6662287204f009a02002b9e66c83d4105e47ebabdc7079108772fc6f0';

/** What the suite imports, installed into the project's venv (Celery 5.7.0's own test pins). */
export const SUITE_PIP_REQUIREMENTS = ['pytest==9.1.1', 'pytest-rerunfailures==16.7', 'pytest-timeout==2.4.0', 'pydantic==2.14.1'];

/** A fault of the harness itself (not a failing test): the run exits non-zero with this message. */
export class HarnessFault extends Error {}

function run(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  if (r.error) throw new HarnessFault(`${what}: ${r.error.message}`);
  if (r.status !== 0) throw new HarnessFault(`${what} failed (exit ${r.status}):\n${(r.stderr || r.stdout).trim().split('\n').slice(-20).join('\n')}`);
  return r.stdout;
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/**
 * Downloads (once) and verifies the sdist, extracts it (once per checksum),
 * and returns the folder that holds `t/integration/`.
 */
export function ensureSuiteSource(python: string, cacheDir: string, log: (line: string) => void): string {
  mkdirSync(cacheDir, { recursive: true });
  const tarball = join(cacheDir, `celery-${CELERY_VERSION}.tar.gz`);
  if (!existsSync(tarball)) {
    log(`downloading celery==${CELERY_VERSION} (sdist) with pip`);
    run(python, ['-m', 'pip', 'download', '--disable-pip-version-check', '-q', '--no-deps', '--no-binary', ':all:', `celery==${CELERY_VERSION}`, '-d', cacheDir], 'pip download');
    if (!existsSync(tarball)) throw new HarnessFault(`pip download did not produce ${tarball}`);
  }
  const actual = sha256(tarball);
  if (actual !== CELERY_SDIST_SHA256) {
    throw new HarnessFault(
      `checksum mismatch for ${tarball}:\n  expected sha256 ${CELERY_SDIST_SHA256}\n  actual   sha256 ${actual}\n` +
        'The file is not the Celery 5.7.0 sdist this harness was pinned to; delete it to download again, ' +
        'and do not run a suite from an unverified archive.',
    );
  }
  const source = join(cacheDir, `celery-${CELERY_VERSION}`);
  const marker = join(source, '.ts-celery-extracted');
  if (!existsSync(marker) || readFileSync(marker, 'utf8').trim() !== actual) {
    rmSync(source, { recursive: true, force: true });
    run('tar', ['-xzf', tarball, '-C', cacheDir], `extracting ${tarball}`);
    if (!existsSync(join(source, 't', 'integration', 'conftest.py'))) throw new HarnessFault(`${tarball} holds no t/integration/conftest.py`);
    writeFileSync(marker, `${actual}\n`);
  }
  return source;
}

/** Installs {@link SUITE_PIP_REQUIREMENTS} into the venv unless those exact versions are there. */
export function ensureSuiteDeps(python: string, log: (line: string) => void): void {
  const check = SUITE_PIP_REQUIREMENTS.map((req) => req.split('=='));
  const script = `import importlib.metadata as m\nimport sys\nfor name, want in ${JSON.stringify(check)}:\n    try:\n        ok = m.version(name) == want\n    except m.PackageNotFoundError:\n        ok = False\n    if not ok:\n        sys.exit(1)\n`;
  const r = spawnSync(python, ['-c', script], { stdio: 'ignore' });
  if (r.status === 0) return;
  log(`pip install ${SUITE_PIP_REQUIREMENTS.join(' ')}`);
  run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', ...SUITE_PIP_REQUIREMENTS], 'pip install');
}
