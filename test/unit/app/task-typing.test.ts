import { expect } from 'chai';
import { Celery, type AsyncResult } from '../../../src/index.js';

/** These lines are checked by `tsc --noEmit` (part of npm test): wrong types must not compile. */
describe('task typing', () => {
  const app = new Celery('typing');
  const add = app.task({ name: 'typing.add' }, (x: number, y: number) => x + y);
  const sms = app.task({ name: 'typing.sms', bind: true }, async (self, mobile: string, code: string) => `${self.name}:${mobile}:${code}`);

  it('types delay/applyAsync from the function and get() from its return type', () => {
    const typecheckOnly = (): void => {
      void add.delay(2, 3);
      // @ts-expect-error a string where a number is expected does not compile
      void add.delay('2', 3);
      // @ts-expect-error too few arguments
      void add.delay(2);
      void sms.delay('13800138000', '123456');
      // @ts-expect-error the bound `self` is not an argument of delay()
      void sms.delay(sms, '13800138000', '123456');
      void add.applyAsync([2], { y: 3 }, { countdown: 5 });
      // @ts-expect-error wrong type inside applyAsync's args
      void add.applyAsync(['x']);
      const r: Promise<AsyncResult<number>> = add.delay(1, 2);
      const s: Promise<AsyncResult<string>> = sms.delay('a', 'b');
      void r.then((x) => { const n: Promise<number> = x.get(); return n; });
      void s;
    };
    expect(typecheckOnly).to.be.a('function');
    expect(add.name).to.equal('typing.add');
    expect(sms.bound).to.equal(true);
  });

  it('refuses a second, different task under the same name', () => {
    expect(() => app.task({ name: 'typing.add' }, (x: number) => x)).to.throw(/already registered/);
  });
});
