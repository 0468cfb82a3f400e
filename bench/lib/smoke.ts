import type { BenchRequest, ServerSpec, SmokeCase } from './protocol.js';

/** The guard smoke checks: the real request 200, no token 401, a forged token 401. */
export function guardSmoke(path: string, token: string, forged: string): SmokeCase[] {
  return [
    { name: 'real token', request: bearerGet(path, token), status: 200 },
    { name: 'no token', request: { method: 'GET', path }, status: 401 },
    { name: 'forged token', request: bearerGet(path, forged), status: 401 },
  ];
}

/** `GET path` with `authorization: Bearer <token>`. */
export function bearerGet(path: string, token: string): BenchRequest {
  return { method: 'GET', path, headers: { authorization: `Bearer ${token}` } };
}

/** `POST path` with a JSON body. */
export function jsonPost(path: string, body: unknown): BenchRequest {
  return {
    method: 'POST',
    path,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  };
}

/** The login smoke checks: a valid IdP token 200 with an access token, a forged one 401, no jwt 422. */
export function loginSmoke(path: string, identityId: string, jwt: string, forged: string): SmokeCase[] {
  return [
    {
      name: 'valid IdP token',
      request: jsonPost(path, { identityId, jwt }),
      status: 200,
      bodyIncludes: 'accessToken',
    },
    { name: 'forged IdP token', request: jsonPost(path, { identityId, jwt: forged }), status: 401 },
    { name: 'no jwt', request: jsonPost(path, { identityId }), status: 422 },
  ];
}

/**
 * The spec of a `GET /hello` server: with a `token`, the guarded request and {@link guardSmoke};
 * without, the bare route (200 with the hello body; an unknown route 404).
 */
export function helloSpec(
  info: Record<string, string | number> | undefined,
  token?: string,
  forged = '',
): Omit<ServerSpec, 'port'> {
  if (token) return { request: bearerGet('/hello', token), smoke: guardSmoke('/hello', token, forged), info };
  return {
    request: { method: 'GET', path: '/hello' },
    smoke: [
      { name: 'route', request: { method: 'GET', path: '/hello' }, status: 200, bodyIncludes: 'hello' },
      { name: 'unknown route', request: { method: 'GET', path: '/nope' }, status: 404 },
    ],
    info,
  };
}
