import { expect } from 'chai';
import { bindArguments, paramsFromOption, readParams } from '../../../src/worker/arguments.js';

describe('reading parameter names from task functions', () => {
  it('reads arrows, async functions, defaults, rest and destructuring', () => {
    expect(readParams((x: number, y: number) => x + y)).to.deep.equal([
      { name: 'x', optional: false, rest: false }, { name: 'y', optional: false, rest: false },
    ]);
    expect(readParams(async function send(mobile: string, code = '000000', ...more: unknown[]) { return [mobile, code, more]; }).map((p) => [p.name, p.optional, p.rest]))
      .to.deep.equal([['mobile', false, false], ['code', true, false], ['more', true, true]]);
    const tricky = (a = ')', b = { x: [1, 2] }, { c }: { c: number } = { c: 1 }, d = (e: number) => e * 2) => [a, b, c, d];
    expect(readParams(tricky).map((p) => p.name)).to.deep.equal(['a', 'b', null, 'd']);
    expect(readParams((x: unknown) => x).map((p) => p.name)).to.deep.equal(['x']);
    expect(readParams(() => 1)).to.deep.equal([]);
  });

  it('reads the params option, with ? for optional and ... for rest', () => {
    expect(paramsFromOption(['mobile', 'code?', '...rest'])).to.deep.equal([
      { name: 'mobile', optional: false, rest: false }, { name: 'code', optional: true, rest: false }, { name: 'rest', optional: true, rest: true },
    ]);
  });
});

describe("mapping args and kwargs with Python's rules", () => {
  const params = readParams((x: number, y: number, z = 0) => x + y + z);
  it('places kwargs by name and leaves omitted defaults to JavaScript', () => {
    expect(bindArguments('t', params, [1], { y: 2 })).to.deep.equal([1, 2]);
    expect(bindArguments('t', params, [], { z: 3, x: 1, y: 2 })).to.deep.equal([1, 2, 3]);
    expect(bindArguments('t', params, [1, 2, 3], {})).to.deep.equal([1, 2, 3]);
  });
  it("raises Python's TypeErrors", () => {
    expect(() => bindArguments('t', params, [1], { w: 1 })).to.throw(TypeError, "t() got an unexpected keyword argument 'w'");
    expect(() => bindArguments('t', params, [1], { x: 1 })).to.throw(TypeError, "t() got multiple values for argument 'x'");
    expect(() => bindArguments('t', params, [], {})).to.throw(TypeError, "t() missing 2 required positional arguments: 'x' and 'y'");
    expect(() => bindArguments('t', params, [1, 2, 3, 4], {})).to.throw(TypeError, 't() takes 3 positional arguments but 4 were given');
    expect(() => bindArguments('t', readParams(({ a }: { a: number }) => a), [], { a: 1 })).to.throw(TypeError, /parameter names are unknown/);
  });
  it('lets a rest parameter take any number of positional args', () => {
    expect(bindArguments('t', readParams((...all: unknown[]) => all), [1, 2, 3], {})).to.deep.equal([1, 2, 3]);
  });
});
