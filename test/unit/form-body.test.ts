import { describe, expect, it } from 'vitest';
import { REPEATED_PARAMETERS, formPairs, parseRequestBody } from '../../src/http/answers.js';

const FORM = 'application/x-www-form-urlencoded';

/** What the WHATWG parser (`URLSearchParams`) reads from `raw`: the reference the fast path must equal. */
const reference = (raw: string) => [...new URLSearchParams(raw)];

describe('application/x-www-form-urlencoded bodies (WHATWG URL, form parsing)', () => {
  it('a body without % or + is read exactly as URLSearchParams reads it: empty sequences skipped, a sequence without = is a name with an empty value, = inside a value kept', () => {
    const cases = [
      '',
      '&',
      '&&a=1&&',
      'a',
      'a=',
      '=b',
      '=',
      'a=b=c',
      'a=1&a=2&b',
      'grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvIn0.c2ln&client_id=gh-deployer',
      'x=é&ü=ñ', // non-ASCII taken as the string holds it
      'a=\u{1F600}&b=\uD83D\uDE00',
      'a=b#c?d;e',
    ];
    for (const raw of cases) expect([...formPairs(raw)], raw).toEqual(reference(raw));
  });

  it('random bodies over an alphabet of names, values, =, & and non-ASCII: the same pairs as URLSearchParams', () => {
    const alphabet = ['a', 'b', 'Z', '0', '=', '=', '&', '&', '-', '_', '.', ':', '~', '/', 'é', '\u{1F600}'];
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let n = 0; n < 2000; n++) {
      let raw = '';
      const length = next() % 24;
      for (let i = 0; i < length; i++) raw += alphabet[next() % alphabet.length];
      expect([...formPairs(raw)], raw).toEqual(reference(raw));
    }
  });

  it('a body with %, + or a lone surrogate is decoded by URLSearchParams itself (percent-decoding, + as space, U+FFFD)', () => {
    for (const raw of ['a=%41%zz', 'a=b+c', 'a+b=%2B', 'a=%E2%82%AC', 'a=\uD800', '\uDC00=b']) {
      expect([...formPairs(raw)], raw).toEqual(reference(raw));
    }
    expect([...formPairs('a=b+c%21')]).toEqual([['a', 'b c!']]);
  });

  it('parseRequestBody keeps the first value of a repeated name and lists all of them under REPEATED_PARAMETERS', () => {
    const body = parseRequestBody(FORM, 'scope=a&audience=x&audience=y') as Record<string | symbol, unknown>;
    expect(body.scope).toBe('a');
    expect(body.audience).toBe('x');
    expect((body[REPEATED_PARAMETERS] as Record<string, string[]>).audience).toEqual(['x', 'y']);
  });
});
