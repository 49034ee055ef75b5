/**
 * The CLI prints replies exactly as Celery 5.7's `celery inspect|control`
 * did for the same replies (test/fixtures/celery-5.7/cli_control.json).
 */
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { pluralize, pyJsonDumps, sayReply } from '../../../src/cli/py-format.js';

const CLI = JSON.parse(readFileSync(new URL('../../fixtures/celery-5.7/cli_control.json', import.meta.url), 'utf8')) as {
  node: string;
  commands: Record<string, { stdout: string; exit_code: number }>;
};
const node = CLI.node;

/** What `celery inspect X` printed: the reply lines, then the node count. */
function inspectOutput(reply: unknown): string {
  return `${sayReply({ [node]: reply }, true)}\n\n1 ${pluralize(1, 'node')} online.\n`;
}

describe("CLI output in Celery's format", () => {
  it('inspect ping, reserved (empty), query_task (nothing found)', () => {
    expect(inspectOutput({ ok: 'pong' })).to.equal(CLI.commands.inspect_ping!.stdout);
    expect(inspectOutput([])).to.equal(CLI.commands.inspect_reserved_empty!.stdout);
    expect(inspectOutput({})).to.equal(CLI.commands.inspect_query_task!.stdout);
  });

  it('inspect registered and revoked: one "* item" per line', () => {
    const out = CLI.commands.inspect_registered!.stdout;
    const names = out.split('\n').filter((l) => l.startsWith('    * ')).map((l) => l.slice(6));
    expect(inspectOutput(names)).to.equal(out);
  });

  it('inspect active: Python reprs of the task dicts', () => {
    const out = CLI.commands.inspect_active!.stdout;
    const m = /'id': '([^']+)'.*'time_start': ([\d.]+).*'worker_pid': (\d+)/.exec(out)!;
    const reply = [{
      id: m[1], name: 'ctl.sleep', args: [4], kwargs: {}, type: 'ctl.sleep', hostname: node, time_start: Number(m[2]),
      acknowledged: true, delivery_info: { exchange: '', routing_key: 'fx.ctl', priority: 0, redelivered: false }, worker_pid: Number(m[3]),
    }];
    expect(inspectOutput(reply)).to.equal(out);
  });

  it('inspect stats: sorted, indented JSON', () => {
    const out = CLI.commands.inspect_stats!.stdout;
    const json = out.split('\n').slice(1, -4).map((l) => l.slice(4)).join('\n');
    const stats = JSON.parse(json) as Record<string, unknown>;
    // 120.0 and 0.0 print as 120 and 0 here: JSON numbers carry no float-ness once parsed.
    const ours = inspectOutput(stats);
    expect(ours.replace(/\.0\b/g, '')).to.equal(out.replace(/\.0\b/g, ''));
  });

  it('control replies: ok and error bodies, no node count', () => {
    expect(`${sayReply({ [node]: { ok: 'new rate limit set successfully' } }, true)}\n`).to.equal(CLI.commands.control_rate_limit!.stdout);
    expect(`${sayReply({ [node]: { error: "ValueError('Autoscale not enabled')" } }, true)}\n`).to.equal(CLI.commands.control_autoscale!.stdout);
    expect(`${sayReply({ [node]: { ok: 'add consumer fx.ctl2' } }, true)}\n`).to.equal(CLI.commands.control_add_consumer!.stdout);
  });

  it('status: the node line without a body; --json as Python json.dumps', () => {
    expect(`${sayReply({ [node]: { ok: 'pong' } }, false)}\n\n1 node online.\n`).to.equal(CLI.commands.status!.stdout);
    expect(`${pyJsonDumps({ [node]: { ok: 'pong' } })}\n`).to.equal(CLI.commands.inspect_ping_json!.stdout);
    const scheduled = JSON.parse(CLI.commands.inspect_scheduled_json!.stdout) as unknown;
    expect(`${pyJsonDumps(scheduled)}\n`).to.equal(CLI.commands.inspect_scheduled_json!.stdout);
  });
});
