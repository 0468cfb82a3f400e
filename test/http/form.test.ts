import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseFormPairs } from '../../src/http/form.js';
import { parseRequestBody, REPEATED_PARAMETERS } from '../../src/http/answers.js';

/**
 * What the WHATWG URL Standard's urlencoded parser (§5.1) reads, through Node's own implementation.
 * The `&` in front: `new URLSearchParams(string)` drops a leading `?` (a query string's), which the
 * parser of a body keeps as a name character; an empty sequence before it changes nothing else.
 */
const standard = (body: string): [string, string][] => [...new URLSearchParams(`&${body}`)];

describe('application/x-www-form-urlencoded bodies (WHATWG URL Standard §5.1)', () => {
  it('reads an RFC 8693 token-exchange body as URLSearchParams does (URN parameters percent-encoded)', () => {
    const body = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvYXBpIn0.c2ln',
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      scope: 'read write',
      client_id: 'gh-deployer',
    }).toString();
    expect(body).toContain('%3A');
    expect(body).toContain('read+write');
    expect(parseFormPairs(body)).toEqual(standard(body));
    expect(parseFormPairs(body)[3]).toEqual(['scope', 'read write']);
  });

  it('every RFC 8693 URN, encoded upper or lower case, as a name or a value, reads as URLSearchParams reads it', () => {
    const urns = [
      'urn:ietf:params:oauth:grant-type:token-exchange',
      'urn:ietf:params:oauth:token-type:jwt',
      'urn:ietf:params:oauth:token-type:id_token',
      'urn:ietf:params:oauth:token-type:access_token',
    ];
    for (const urn of urns) {
      const upper = encodeURIComponent(urn);
      const lower = upper.replaceAll('%3A', '%3a');
      const bodies = [
        `t=${upper}`,
        `t=${lower}`,
        `${upper}=x`,
        `t=${upper}+x`,
        `t=${upper}%20`,
        `t=x${upper}`,
      ];
      for (const body of bodies) expect(parseFormPairs(body)).toEqual(standard(body));
      expect(parseFormPairs(`t=${upper}`)).toEqual([['t', urn]]);
    }
  });

  it.each([
    ['', 'empty body'],
    ['&&&', 'only separators'],
    ['a', 'a name without ='],
    ['a=', 'an empty value'],
    ['=b', 'an empty name'],
    ['a=b=c', 'an = inside a value'],
    ['a=1&a=2&&b', 'repeated names and an empty sequence'],
    ['a+b=c+d', '+ in a name and a value'],
    ['%2B=%2b', 'an encoded + (upper and lower case hex)'],
    ['a=%', 'a lone %'],
    ['a=%4', 'a truncated escape'],
    ['a=%zz', 'an escape that is not hex'],
    ['a=%C3%A9', 'UTF-8 é'],
    ['a=%C3', 'a truncated UTF-8 sequence (U+FFFD)'],
    ['a=%FF%FE', 'bytes that are never UTF-8'],
    ['a=%ED%A0%80', 'an encoded surrogate (U+FFFD)'],
    ['a=%C0%AF', 'an overlong encoding (U+FFFD)'],
    ['a=%EF%BB%BFx', 'an encoded BOM (kept)'],
    ['a=é&b=%E2%82%AC', 'a raw non-ASCII character beside an encoded one'],
    ['a=%25&b=%2525', 'an encoded %, twice'],
    ['a=x%00y', 'an encoded NUL'],
    ['?a=b', 'a leading ? (a name character in a body, not a query prefix)'],
    ['a=b#c', 'a # (no fragment in a body)'],
  ])('%s (%s): the same pairs as URLSearchParams', (body) => {
    expect(parseFormPairs(body)).toEqual(standard(body));
  });

  it('any body built from the characters that matter reads as URLSearchParams reads it (20,000 random bodies)', () => {
    const piece = fc.oneof(
      fc.constantFrom(
        '&',
        '=',
        '+',
        '%',
        '%2',
        '%3A',
        '%3a',
        '%25',
        '%2B',
        '%C3',
        '%A9',
        '%C3%A9',
        '%FF',
        '%ED%A0%80',
        '%F0%9F%98%80',
      ),
      fc.constantFrom('a', 'Z', '0', '-', '.', '_', '~', ' ', 'é', '€', '😀', '#', '?', '\u0000'),
      fc.string({ maxLength: 4 }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 24 }), (pieces) => {
        const body = pieces.join('');
        expect(parseFormPairs(body)).toEqual(standard(body));
      }),
      { numRuns: 20_000 },
    );
  });

  it('parseRequestBody keeps the first value of a repeated name and lists every value under REPEATED_PARAMETERS', () => {
    const body = parseRequestBody(
      'application/x-www-form-urlencoded',
      'scope=a&resource=x%3A1&resource=y&scope=b',
    );
    expect(body.scope).toBe('a');
    expect(body.resource).toBe('x:1');
    expect((body as Record<symbol, unknown>)[REPEATED_PARAMETERS]).toEqual({
      scope: ['a', 'b'],
      resource: ['x:1', 'y'],
    });
  });
});
