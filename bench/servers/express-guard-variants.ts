/**
 * Diagnostic guards on Express 5 that split the cost of `requireAccessToken` (set `diagnose`).
 * `BENCH_VARIANT`:
 * - `noop-async`: an async middleware that awaits nothing, checks the header is present and calls `next()`;
 * - `floor-hmac`: a sync middleware that checks our token's HMAC with node:crypto and looks its id up in a Map
 *   (the floor for a stateful own-token guard);
 * - `floor-map`: a sync middleware that only splits the token and looks its id up in a Map (no crypto);
 * - `cached-mac`: like `floor-hmac`, but the expected MAC of each live token id is kept in the Map (computed
 *   once), so a request costs a Map lookup and a `timingSafeEqual` instead of an HMAC;
 * - `direct`: an async middleware calling `auth.authenticate()` with the socket address (engine without adapter);
 * - `fixed-ip`: `requireAccessToken(auth, { getClientIp: () => '127.0.0.1' })` (adapter without `req.ip`);
 * - `codec-mac-cache`: `requireAccessToken(auth)` with `AccessTokenCodec.prototype.parse` wrapped (in this
 *   process only) by a cache of verified MACs keyed by the signed part of the token, compared with
 *   `timingSafeEqual`: what the guard would cost if `parse` skipped the HMAC for tokens it has verified.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { requireAccessToken } from '../../adapters/express/index.js';
import { AccessTokenCodec, createOidcAuth } from '../../src/index.js';
import { expressApp, hello } from '../lib/express-app.js';
import {
  benchIdentity,
  IDENTITY_ID,
  makeIdpKey,
  SIGNING_KEYS,
  signIdpToken,
  tamper,
} from '../lib/fixtures.js';
import { startBenchServer } from '../lib/server-kit.js';
import { bearerGet, guardSmoke } from '../lib/smoke.js';

const variant = process.env.BENCH_VARIANT ?? '';

if (variant === 'codec-mac-cache') {
  const parse = AccessTokenCodec.prototype.parse;
  const verified = new Map<string, { mac: Buffer; parsed: NonNullable<ReturnType<typeof parse>> }>();
  AccessTokenCodec.prototype.parse = function cachedParse(this: AccessTokenCodec, token: string) {
    const dot = token.lastIndexOf('.');
    const hit = dot > 0 ? verified.get(token.slice(0, dot)) : undefined;
    if (hit) {
      const given = Buffer.from(token.slice(dot + 1));
      return given.length === hit.mac.length && timingSafeEqual(given, hit.mac) ? hit.parsed : undefined;
    }
    const parsed = parse.call(this, token);
    if (parsed) {
      if (verified.size >= 10_000) verified.clear();
      verified.set(token.slice(0, dot), { mac: Buffer.from(token.slice(dot + 1)), parsed });
    }
    return parsed;
  };
}

function deny(res: Response): void {
  res.status(401).set('www-authenticate', 'Bearer').json({ error: 'invalid_token' });
}

await startBenchServer(async () => {
  const key = makeIdpKey('RS256');
  const auth = createOidcAuth({ identities: [benchIdentity(key)], signingKeys: SIGNING_KEYS });
  const grant = await auth.login({
    identityId: IDENTITY_ID,
    jwt: await signIdpToken(key),
    clientIp: '127.0.0.1',
  });
  const token = grant.accessToken;
  let guard: RequestHandler;
  if (variant === 'noop-async') {
    guard = async (req: Request, res: Response, next: NextFunction) => {
      await undefined;
      if (req.headers.authorization !== `Bearer ${token}`) return deny(res);
      next();
    };
  } else if (variant === 'floor-hmac') {
    const secret = Buffer.from(SIGNING_KEYS.k1);
    const live = new Map([[grant.tokenId, { identityId: IDENTITY_ID, uses: 0 }]]);
    guard = (req: Request, res: Response, next: NextFunction) => {
      const header = req.headers.authorization;
      const value = header?.startsWith('Bearer ') ? header.slice(7) : '';
      const dot = value.lastIndexOf('.');
      const given = Buffer.from(value.slice(dot + 1));
      const expected = Buffer.from(
        createHmac('sha256', secret).update(value.slice(0, dot)).digest('base64url'),
      );
      if (dot < 0 || given.length !== expected.length || !timingSafeEqual(given, expected)) return deny(res);
      const record = live.get(value.split('.')[1] ?? '');
      if (!record) return deny(res);
      record.uses++;
      next();
    };
  } else if (variant === 'floor-map' || variant === 'cached-mac') {
    const unsigned = token.slice(0, token.lastIndexOf('.'));
    const mac = Buffer.from(
      createHmac('sha256', Buffer.from(SIGNING_KEYS.k1)).update(unsigned).digest('base64url'),
    );
    const live = new Map([[grant.tokenId, { identityId: IDENTITY_ID, uses: 0, mac }]]);
    const checkMac = variant === 'cached-mac';
    guard = (req: Request, res: Response, next: NextFunction) => {
      const header = req.headers.authorization;
      const value = header?.startsWith('Bearer ') ? header.slice(7) : '';
      const dot = value.lastIndexOf('.');
      const record = live.get(value.split('.')[1] ?? '');
      if (!record || dot < 0) return deny(res);
      if (checkMac) {
        const given = Buffer.from(value.slice(dot + 1));
        if (given.length !== record.mac.length || !timingSafeEqual(given, record.mac)) return deny(res);
      } else if (value.slice(dot + 1) !== record.mac.toString()) {
        return deny(res);
      }
      record.uses++;
      next();
    };
  } else if (variant === 'direct') {
    guard = async (req: Request, res: Response, next: NextFunction) => {
      const header = req.headers.authorization;
      try {
        await auth.authenticate(header?.startsWith('Bearer ') ? header.slice(7) : '', {
          clientIp: req.socket.remoteAddress,
        });
      } catch {
        return deny(res);
      }
      next();
    };
  } else if (variant === 'fixed-ip') {
    guard = requireAccessToken(auth, { getClientIp: () => '127.0.0.1' });
  } else if (variant === 'codec-mac-cache') {
    guard = requireAccessToken(auth);
  } else {
    throw new Error(`unknown BENCH_VARIANT ${JSON.stringify(variant)}`);
  }
  const app = expressApp();
  app.get('/hello', guard, hello);
  return {
    listener: app,
    spec: {
      request: bearerGet('/hello', token),
      smoke: guardSmoke('/hello', token, tamper(token)),
      info: { variant },
    },
  };
});
