import { expect } from 'chai';
import { Celery, ImproperlyConfigured } from '../../../src/index.js';
import { bindArguments, paramsFromOption, readParams } from '../../../src/worker/arguments.js';

describe('reading parameter names from task functions', () => {
  it('reads arrows, async functions, defaults, rest and destructuring', () => {
    expect(readParams((x: number, y: number) => x + y)).to.deep.equal([
      { name: 'x', optional: false, kind: 'positional' }, { name: 'y', optional: false, kind: 'positional' },
    ]);
    expect(readParams(async function send(mobile: string, code = '000000', ...more: unknown[]) { return [mobile, code, more]; }).map((p) => [p.name, p.optional, p.kind]))
      .to.deep.equal([['mobile', false, 'positional'], ['code', true, 'positional'], ['more', true, 'spread']]);
    const tricky = (a = ')', b = { x: [1, 2] }, { c }: { c: number } = { c: 1 }, d = (e: number) => e * 2) => [a, b, c, d];
    expect(readParams(tricky).map((p) => p.name)).to.deep.equal(['a', 'b', null, 'd']);
    expect(readParams((x: unknown) => x).map((p) => p.name)).to.deep.equal(['x']);
    expect(readParams(() => 1)).to.deep.equal([]);
  });

  it('reads the params option, with ? for optional and ... for rest', () => {
    expect(paramsFromOption(['mobile', 'code?', '...rest'])).to.deep.equal([
      { name: 'mobile', optional: false, kind: 'positional' }, { name: 'code', optional: true, kind: 'positional' }, { name: 'rest', optional: true, kind: 'spread' },
    ]);
  });

  it("reads Python's *args and **kwargs, with keyword-only names after *args", () => {
    expect(paramsFromOption(['a', '*args', 'b', 'c?', '**kwargs']).map((p) => [p.name, p.kind, p.optional])).to.deep.equal([
      ['a', 'positional', false], ['args', 'varargs', true], ['b', 'kwonly', false], ['c', 'kwonly', true], ['kwargs', 'varkw', true],
    ]);
  });

  it('rejects a params list Python would not accept, saying why', () => {
    expect(() => paramsFromOption(['**kwargs', 'a'])).to.throw(ImproperlyConfigured, /nothing may follow '\*\*kwargs'/);
    expect(() => paramsFromOption(['*a', '*b'])).to.throw(ImproperlyConfigured, /only one '\*args'/);
    expect(() => paramsFromOption(['x', 'x'])).to.throw(ImproperlyConfigured, /duplicate parameter "x"/);
    expect(() => paramsFromOption(['*args', '...rest'])).to.throw(ImproperlyConfigured, /cannot be combined/);
    expect(() => paramsFromOption(['a b'])).to.throw(ImproperlyConfigured, /is not a parameter name/);
    // At definition time, not when the first message arrives.
    expect(() => new Celery('t').task({ name: 'bad', params: ['**kw', 'x'] }, () => 1)).to.throw(ImproperlyConfigured, /Invalid params/);
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

describe("binding Python's *args and **kwargs", () => {
  const any = paramsFromOption(['*args', '**kwargs']);
  const mixed = paramsFromOption(['a', 'b?', '*args', 'key', '**kwargs']);
  it('collects extra positional args into one array and unmatched kwargs into one object', () => {
    expect(bindArguments('t', any, [1, 2], { x: 1 })).to.deep.equal([[1, 2], { x: 1 }]);
    expect(bindArguments('t', any, [], {})).to.deep.equal([[], {}]);
    // The collectors' own names are not keywords: they land in kwargs, as in Python.
    expect(bindArguments('t', any, [], { args: 1, kwargs: 2 })).to.deep.equal([[], { args: 1, kwargs: 2 }]);
  });
  it('binds named parameters first, by position or name, and keyword-only ones by name', () => {
    expect(bindArguments('t', mixed, [1, 2, 3, 4], { key: 'k', z: 9 })).to.deep.equal([1, 2, [3, 4], 'k', { z: 9 }]);
    expect(bindArguments('t', mixed, [], { a: 1, key: 'k' })).to.deep.equal([1, undefined, [], 'k', {}]);
    expect(() => bindArguments('t', mixed, [1], { a: 2, key: 'k' })).to.throw(TypeError, "t() got multiple values for argument 'a'");
    expect(() => bindArguments('t', mixed, [], { key: 'k' })).to.throw(TypeError, "t() missing 1 required positional argument: 'a'");
    expect(() => bindArguments('t', mixed, [1, 2, 3], {})).to.throw(TypeError, "t() missing 1 required keyword-only argument: 'key'");
  });
  it('without **kwargs an unknown keyword is still a TypeError; without *args extra args are', () => {
    const onlyArgs = paramsFromOption(['*args']);
    expect(bindArguments('t', onlyArgs, [1, 2], {})).to.deep.equal([[1, 2]]);
    expect(() => bindArguments('t', onlyArgs, [], { x: 1 })).to.throw(TypeError, "t() got an unexpected keyword argument 'x'");
    const onlyKw = paramsFromOption(['a', '**kwargs']);
    expect(bindArguments('t', onlyKw, [1], { b: 2 })).to.deep.equal([1, { b: 2 }]);
    expect(() => bindArguments('t', onlyKw, [1, 2], {})).to.throw(TypeError, 't() takes 1 positional argument but 2 were given');
  });
});
