import { PASS, WARN, show, when } from './text.js';

/** A JWT split and decoded without any verification. */
export interface DecodedToken {
  /** Always false: nothing about the token was checked. */
  verified: false;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  /** Bytes of the signature (never its value). */
  signatureBytes: number;
}

/** Why a string could not be decoded, in words (never echoing the input). */
export class DecodeError extends Error {
  override name = 'DecodeError';
}

/** Split a compact JWS and decode its header and claims. Checks nothing. */
export function decodeToken(jwt: string): DecodedToken {
  const parts = jwt.split('.');
  if (parts.length === 5)
    throw new DecodeError('this is an encrypted JWE (5 parts), which cannot be decoded');
  if (parts.length !== 3)
    throw new DecodeError(`a JWT has 3 dot-separated parts; this input has ${parts.length}`);
  const [header, claims, signature] = parts as [string, string, string];
  return {
    verified: false,
    header: segment(header, 'header'),
    claims: segment(claims, 'payload'),
    signatureBytes: Buffer.from(signature, 'base64url').length,
  };
}

function segment(text: string, name: string): Record<string, unknown> {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) throw new DecodeError(`the ${name} is not base64url`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw new DecodeError(`the ${name} is not base64url-encoded JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DecodeError(`the ${name} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** The decoded token for people, clearly labelled unverified. */
export function formatDecoded(decoded: DecodedToken, nowSeconds: number): string {
  const lines = [
    `${WARN} UNVERIFIED: decoded only. The signature, issuer, times and bindings were NOT checked;`,
    '  run `oidc-machine-auth explain` to check a login.',
    '',
    'header:',
    indent(pretty(decoded.header)),
    '',
    'claims:',
    indent(pretty(decoded.claims)),
    '',
    'times:',
  ];
  for (const name of ['iat', 'nbf', 'exp'] as const) {
    const value = decoded.claims[name];
    lines.push(`  ${name}  ${value === undefined ? 'absent' : when(value, nowSeconds)}`);
  }
  const { iat, exp } = decoded.claims;
  if (typeof iat === 'number' && typeof exp === 'number')
    lines.push(`  lifetime  ${exp - iat} s (exp - iat)`);
  lines.push('', `${PASS} signature present (${decoded.signatureBytes} bytes), not checked`);
  return `${lines.join('\n')}\n`;
}

/** An object pretty-printed with every value passed through the CLI's `show` (escaped, redacted). */
function pretty(claims: Record<string, unknown>): string {
  const keys = Object.keys(claims);
  if (keys.length === 0) return '{}';
  return [
    '{',
    ...keys.map((k, i) => `  ${JSON.stringify(k)}: ${show(claims[k])}${i < keys.length - 1 ? ',' : ''}`),
    '}',
  ].join('\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}
