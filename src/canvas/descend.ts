/**
 * How many header results complete a chord (Celery's `chord._descend`): each
 * task counts one, a group counts its members, a chain counts its last
 * non-empty step, a chord counts its body.
 */
import { isDict, Signature } from './signature.js';

export function descend(sig: unknown): number {
  const s = sig instanceof Signature ? sig : isDict(sig) ? Signature.fromDict(sig) : null;
  if (s === null) return Array.isArray(sig) ? sig.length : 0;
  switch (s.subtaskType) {
    case 'group': {
      const tasks = s.kwargs.tasks;
      const list = tasks instanceof Signature ? ((tasks.kwargs.tasks as unknown[]) ?? []) : ((tasks as unknown[]) ?? []);
      return list.reduce<number>((n, t) => n + descend(t), 0);
    }
    case 'chain': {
      const tasks = (s.kwargs.tasks as unknown[]) ?? [];
      for (let i = tasks.length - 1; i >= 0; i--) {
        const size = descend(tasks[i]);
        if (size > 0) return size;
      }
      // An empty chain: hope the canvas around it can still complete (as Celery does).
      return 0;
    }
    case 'chord':
      return descend(s.kwargs.body);
    default:
      return 1;
  }
}
