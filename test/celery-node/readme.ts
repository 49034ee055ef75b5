/**
 * celery-node's own README examples (its "Getting started" client and worker), read from the
 * installed celery-node package, and the edits that make them run through ts-celery/celery-node.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { expect } from 'chai';

const README = join(dirname(createRequire(import.meta.url).resolve('celery-node/package.json')), 'README.md');

/** The ```javascript block that follows `#### celery.node` under `### <section>`. */
export function celeryNodeExample(section: 'Client' | 'Worker'): string {
  const text = readFileSync(README, 'utf8');
  const at = text.indexOf(`### ${section}\n#### celery.node\n`);
  expect(at, `celery-node's README has a ${section} example`).to.be.at.least(0);
  const m = /```javascript\n([\s\S]*?)```/.exec(text.slice(at));
  return m![1]!;
}

/**
 * The example with its require changed and its connection arguments replaced, and nothing else:
 * each substitution must apply exactly once (so the README's code, not a rewrite of it, runs).
 */
export function migrateExample(code: string, broker: string, backend: string, queue: string): string {
  const substitutions: Array<[RegExp, (...m: string[]) => string]> = [
    [/require\('celery-node'\)/g, () => "require('ts-celery/celery-node')"],
    [/(create(?:Client|Worker))\(\s*"amqp:\/\/",\s*"amqp:\/\/"\s*\)/g, (_, fn) => `${fn}(${JSON.stringify(broker)}, ${JSON.stringify(backend)}, ${JSON.stringify(queue)})`],
  ];
  let out = code;
  for (const [pattern, replacement] of substitutions) {
    expect(code.match(pattern), `${pattern} in celery-node's example:\n${code}`).to.have.lengthOf(1);
    out = out.replace(pattern, replacement as (substring: string, ...args: string[]) => string);
  }
  return out;
}

