/**
 * The remote-control commands a worker answers, with Celery's names, kinds
 * (inspect = read-only, control = changes something), command-line
 * signatures and help (`celery/worker/control.py`'s Panel). Inspect handlers
 * are in inspect-commands.ts, control handlers in control-commands.ts; the
 * CLI reads this table to parse `ts-celery inspect|control <command> [args]`.
 */
import type { CommandHandler } from './command-support.js';
import { CONTROL_HANDLERS } from './control-commands.js';
import { INSPECT_HANDLERS } from './inspect-commands.js';

export { NO_REPLY, type CommandContext } from './command-support.js';

/** How the CLI converts a positional argument (Python's `args=[(name, type)]`). */
export type ArgType = 'str' | 'int' | 'float' | 'bool';

export interface CommandSpec {
  type: 'inspect' | 'control';
  /** First line of the command's help (`--list`). */
  help: string;
  /** Positional arguments for the command line, in order. */
  args?: ReadonlyArray<readonly [string, ArgType]>;
  /** The argument that takes every remaining command-line word as a list. */
  variadic?: string;
  signature?: string;
  /** Hidden from `--list` and the CLI (`hello`). */
  visible?: boolean;
  handler: CommandHandler;
}

type Meta = Omit<CommandSpec, 'handler'>;

const META: Record<string, Meta> = {
  // inspect
  active: { type: 'inspect', help: 'List of tasks currently being executed.' },
  active_queues: { type: 'inspect', help: 'List the task queues a worker is currently consuming from.' },
  clock: { type: 'inspect', help: 'Get current logical clock value.' },
  conf: { type: 'inspect', help: 'List configuration.', args: [['with_defaults', 'bool']], signature: '[include_defaults=False]' },
  hello: { type: 'inspect', help: 'Request mingle sync-data.', visible: false },
  memdump: { type: 'inspect', help: 'Dump statistics of previous memsample requests.', args: [['samples', 'int']], signature: '[n_samples=10]' },
  memsample: { type: 'inspect', help: 'Sample current RSS memory usage.' },
  objgraph: {
    type: 'inspect',
    help: 'Create graph of uncollected objects (memory-leak debugging).',
    args: [['type', 'str'], ['num', 'int'], ['max_depth', 'int']],
    signature: '[object_type=Request] [num=200 [max_depth=10]]',
  },
  ping: { type: 'inspect', help: 'Ping worker(s).' },
  query_task: { type: 'inspect', help: 'Query for task information by id.', variadic: 'ids', signature: '[id1 [id2 [... [idN]]]]' },
  registered: { type: 'inspect', help: 'List of registered tasks.', variadic: 'taskinfoitems', signature: '[attr1 [attr2 [... [attrN]]]]' },
  report: { type: 'inspect', help: 'Information about Celery installation for bug reports.' },
  reserved: { type: 'inspect', help: 'List of currently reserved tasks, not including scheduled/active.' },
  revoked: { type: 'inspect', help: 'List of revoked task-ids.' },
  scheduled: { type: 'inspect', help: 'List of currently scheduled ETA/countdown tasks.' },
  stats: { type: 'inspect', help: 'Request worker statistics/information.' },
  // control
  add_consumer: {
    type: 'control',
    help: 'Tell worker(s) to consume from task queue by name.',
    args: [['queue', 'str'], ['exchange', 'str'], ['exchange_type', 'str'], ['routing_key', 'str']],
    signature: '<queue> [exchange [type [routing_key]]]',
  },
  autoscale: { type: 'control', help: 'Modify autoscale settings.', args: [['max', 'int'], ['min', 'int']], signature: '[max [min]]' },
  cancel_consumer: { type: 'control', help: 'Tell worker(s) to stop consuming from task queue by name.', args: [['queue', 'str']], signature: '<queue>' },
  disable_events: { type: 'control', help: 'Tell worker(s) to stop sending task-related events.' },
  election: { type: 'control', help: 'Hold election.' },
  enable_events: { type: 'control', help: 'Tell worker(s) to send task-related events.' },
  heartbeat: { type: 'control', help: 'Tell worker(s) to send event heartbeat immediately.' },
  pool_grow: { type: 'control', help: 'Grow pool by n processes/threads.', args: [['n', 'int']], signature: '[N=1]' },
  pool_restart: { type: 'control', help: 'Restart execution pool.' },
  pool_shrink: { type: 'control', help: 'Shrink pool by n processes/threads.', args: [['n', 'int']], signature: '[N=1]' },
  rate_limit: {
    type: 'control',
    help: 'Tell worker(s) to modify the rate limit for a task by type.',
    args: [['task_name', 'str'], ['rate_limit', 'str']],
    signature: '<task_name> <rate_limit (e.g., 5/s | 5/m | 5/h)>',
  },
  revoke: { type: 'control', help: 'Revoke task by task id (or list of ids).', variadic: 'task_id', signature: '[id1 [id2 [... [idN]]]]' },
  revoke_by_stamped_headers: {
    type: 'control',
    help: 'Revoke task by header (or list of headers).',
    variadic: 'headers',
    signature: '[key1=value1 [key2=value2 [... [keyN=valueN]]]]',
  },
  shutdown: { type: 'control', help: 'Shutdown worker(s).' },
  terminate: {
    type: 'control',
    help: 'Terminate task by task id (or list of ids).',
    args: [['signal', 'str']],
    variadic: 'task_id',
    signature: '<signal> [id1 [id2 [... [idN]]]]',
  },
  time_limit: {
    type: 'control',
    help: 'Tell worker(s) to modify the time limit for task by type.',
    args: [['task_name', 'str'], ['soft', 'float'], ['hard', 'float']],
    signature: '<task_name> <soft_secs> [hard_secs]',
  },
};

/** Celery's aliases (`dump_tasks` = `registered`...), answered like the command they name. */
const ALIASES: Record<string, string> = {
  dump_conf: 'conf',
  dump_schedule: 'scheduled',
  dump_reserved: 'reserved',
  dump_active: 'active',
  dump_revoked: 'revoked',
  dump_tasks: 'registered',
};

function buildTable(): Record<string, CommandSpec> {
  const handlers: Record<string, CommandHandler> = { ...INSPECT_HANDLERS, ...CONTROL_HANDLERS };
  const table: Record<string, CommandSpec> = {};
  for (const [name, meta] of Object.entries(META)) {
    const handler = handlers[name];
    if (!handler) throw new Error(`remote-control command ${name} has no handler`);
    table[name] = { ...meta, handler };
  }
  for (const [alias, name] of Object.entries(ALIASES)) table[alias] = { ...table[name]!, visible: false };
  return table;
}

/** Every command by name (aliases included). */
export const COMMANDS: Readonly<Record<string, CommandSpec>> = buildTable();

/** The commands of one kind shown by `--list` and accepted by the CLI, sorted by name. */
export function commandsOfType(type: 'inspect' | 'control'): Array<[string, CommandSpec]> {
  return Object.entries(COMMANDS)
    .filter(([, spec]) => spec.type === type && spec.visible !== false)
    .sort(([a], [b]) => (a < b ? -1 : 1));
}
