/**
 * Celery's result tuples: how a result tree (a task, its parents, a group's
 * members) is written into `children` and `celery-taskset-meta-<id>`:
 *
 *   AsyncResult:  [[id, parentTuple | null], null]
 *   GroupResult:  [[id, parentTuple | null], [memberTuple, ...]]
 */

/** One node of a result tree, as JSON. */
export type ResultTuple = [[string, ResultTuple | null], ResultTuple[] | null];

/** True when `value` has the shape of a result tuple. */
export function isResultTuple(value: unknown): value is ResultTuple {
  if (!Array.isArray(value) || value.length !== 2) return false;
  const [head, nodes] = value as unknown[];
  if (!Array.isArray(head) || head.length !== 2 || typeof head[0] !== 'string') return false;
  return nodes === null || Array.isArray(nodes);
}

/** The ids of every leaf task in a tuple, in order. */
export function tupleLeafIds(tuple: ResultTuple): string[] {
  const [[id], nodes] = tuple;
  return nodes === null ? [id] : nodes.flatMap(tupleLeafIds);
}
