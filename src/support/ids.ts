/** Identifiers Celery puts on the wire. */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

/** A new task id (uuid4, as Celery uses). */
export const newTaskId = (): string => randomUUID();

/** The machine's short host name (Celery's `%h` is the full one; `%n` the short one). */
export const hostName = (): string => hostname();

/** `gen<pid>@<host>`: the `origin` header Python producers send. */
export const producerOrigin = (): string => `gen${process.pid}@${hostname()}`;
