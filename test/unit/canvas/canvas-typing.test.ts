import { expect } from 'chai';
import { Celery, chain, chord, group, type AsyncResult, type GroupResult } from '../../../src/index.js';

/** Checked by `tsc --noEmit` (part of npm test): a canvas whose steps do not fit does not compile. */
describe('canvas typing', () => {
  const app = new Celery('canvas-typing');
  const add = app.task({ name: 'ct.add' }, (x: number, y: number) => x + y);
  const mul = app.task({ name: 'ct.mul' }, (x: number, y: number) => x * y);
  const shout = app.task({ name: 'ct.shout' }, (text: string) => text.toUpperCase());
  const tsum = app.task({ name: 'ct.tsum' }, (nums: number[]) => nums.reduce((a, b) => a + b, 0));

  it('checks that each chain step takes the previous result as its first parameter', () => {
    const typecheckOnly = (): void => {
      const ok: Promise<AsyncResult<number>> = chain(add.s(2, 2), mul.s(4), add.s(1)).applyAsync();
      // @ts-expect-error shout takes a string, add returns a number
      void chain(add.s(2, 2), shout.s());
      // @ts-expect-error s() binds the last parameters: mul(x, y) cannot bind a string
      void mul.s('4');
      // An immutable step takes no previous result: any type is fine.
      void chain(add.s(2, 2), shout.si('done'));
      // A group's result is a list: a chord body taking number[] fits.
      const c: Promise<AsyncResult<number>> = chord([add.s(1, 1), add.s(2, 2)], tsum.s()).applyAsync();
      const g: Promise<GroupResult<number>> = group([add.s(1, 1), mul.s(2, 2)]).applyAsync();
      void ok;
      void c;
      void g;
    };
    expect(typecheckOnly).to.be.a('function');
  });
});
