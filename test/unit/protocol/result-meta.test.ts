import { expect } from 'chai';
import { MaxRetriesExceededError, TaskError } from '../../../src/errors.js';
import { deserializeException, serializeException, JS_EXCEPTION_MODULE } from '../../../src/protocol/exceptions.js';
import { buildExceptionMeta, buildResultMeta } from '../../../src/protocol/result-meta.js';
import { fixture } from '../../helpers/fixtures.js';

interface Stored { stored: { value_decoded: Record<string, unknown> } }

describe('result meta (against Python 5.2.6 Redis captures)', () => {
  it('builds SUCCESS with the keys, in the order, Python stores', () => {
    const py = fixture<Stored>('redis_success').stored.value_decoded;
    const meta = buildResultMeta(py.task_id as string, 'SUCCESS', py.result);
    expect(Object.keys(meta)).to.deep.equal(Object.keys(py));
    expect(meta).to.deep.include({ status: 'SUCCESS', result: py.result, traceback: null, children: [], task_id: py.task_id });
    expect(meta.date_done).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$/);
  });

  it('stores a task that returned nothing as result null (Python reads meta["result"])', () => {
    const meta = JSON.parse(JSON.stringify(buildResultMeta('id-1', 'SUCCESS', undefined)));
    expect(meta).to.have.property('result', null);
  });

  it('leaves date_done null for states that are not ready, and adds parent_id like a retried task', () => {
    expect(buildResultMeta('t', 'STARTED', { pid: 1, hostname: 'w@h' }).date_done).to.equal(null);
    const retried = fixture<{ retry_without_exc: Stored }>('redis_retry').retry_without_exc.stored.value_decoded;
    const meta = buildResultMeta('t', 'SUCCESS', 1, null, { parentId: 't' });
    expect(Object.keys(meta)).to.deep.equal(Object.keys(retried));
  });

  it('reads a Python ValueError as a TaskError with type, message, module and traceback', () => {
    const py = fixture<{ builtin_ValueError: Stored }>('redis_failure').builtin_ValueError.stored.value_decoded;
    const err = deserializeException(py.result, { state: 'FAILURE', taskId: 'id', traceback: py.traceback as string });
    expect(err).to.be.instanceOf(TaskError);
    expect(err.name).to.equal('ValueError');
    expect(err.excType).to.equal('ValueError');
    expect(err.excMessage).to.equal('something bad happened');
    expect(err.excModule).to.equal('builtins');
    expect(err.message).to.equal('ValueError: something bad happened');
    expect(err.remoteTraceback).to.contain('raise ValueError(msg)');
  });

  it('reads a Python custom exception and MaxRetriesExceededError', () => {
    const custom = fixture<{ custom_exception: Stored }>('redis_failure').custom_exception.stored.value_decoded;
    const err = deserializeException(custom.result, { state: 'FAILURE', taskId: 'id', traceback: null });
    expect(err.excType).to.equal((custom.result as { exc_type: string }).exc_type);
    const exhausted = fixture<{ max_retries_exceeded_without_exc: Stored }>('redis_retry_exhausted').max_retries_exceeded_without_exc.stored.value_decoded;
    expect(deserializeException(exhausted.result, { state: 'FAILURE', taskId: 'i', traceback: null }).excType).to.equal('MaxRetriesExceededError');
  });

  it('treats a crafted exc_type as data only', () => {
    const err = deserializeException({ exc_type: 'os.system', exc_message: ['rm -rf /'], exc_module: 'os' }, { state: 'FAILURE', taskId: 'i', traceback: null });
    expect(err).to.be.instanceOf(TaskError);
    expect(err.excType).to.equal('os.system');
    expect(err.excArgs).to.deep.equal(['rm -rf /']);
    const odd = deserializeException('not an exception', { state: 'FAILURE', taskId: 'i', traceback: null });
    expect(odd.excType).to.equal('Exception');
  });

  it('reads a celery-node 0.5.9 failure (result null, the Error object as traceback) as an Exception without traceback', () => {
    // What celery-node's worker stores: {status: 'FAILURE', result: null, traceback: {}}.
    const err = deserializeException(null, { state: 'FAILURE', taskId: 'i', traceback: {} as unknown as string });
    expect(err).to.be.instanceOf(TaskError);
    expect(err.excType).to.equal('Exception');
    expect(err.remoteTraceback).to.equal(null);
  });

  it('stores JS errors so Python rebuilds them: builtins by name, others with their class name', () => {
    expect(serializeException(new TypeError('bad arg'))).to.deep.equal({ exc_type: 'TypeError', exc_message: ['bad arg'], exc_module: 'builtins' });
    class ValueError extends Error { override name = 'ValueError'; }
    expect(serializeException(new ValueError('v')).exc_module).to.equal('builtins');
    class SmsProviderError extends Error {}
    expect(serializeException(new SmsProviderError('down'))).to.deep.equal({ exc_type: 'SmsProviderError', exc_message: ['down'], exc_module: JS_EXCEPTION_MODULE });
    expect(serializeException(new MaxRetriesExceededError('no more')).exc_module).to.equal('celery.exceptions');
    expect(serializeException('plain string')).to.deep.equal({ exc_type: 'Exception', exc_message: ['plain string'], exc_module: 'builtins' });
  });

  it('round-trips an error through meta', () => {
    class QuotaError extends Error {}
    const meta = buildExceptionMeta('t1', 'FAILURE', new QuotaError('over quota'));
    expect(meta.traceback).to.contain('QuotaError');
    const err = deserializeException(meta.result, { state: meta.status, taskId: 't1', traceback: meta.traceback });
    expect(err.excType).to.equal('QuotaError');
    expect(err.excMessage).to.equal('over quota');
  });
});
