/** A config module as users write one (used by config.test.ts). */
export default { task_default_queue: 'from-module', result_expires: 60 };
