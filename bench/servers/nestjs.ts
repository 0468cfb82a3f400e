/**
 * NestJS 12 on its Express platform: `GET /hello` answering a small JSON from a controller. `BENCH_VARIANT`:
 * - `bare` (default): the route with no guard, the baseline of every Nest run;
 * - `noop-guard`: behind a guard that returns true (what any Nest guard costs: the diagnostic floor);
 * - `guard`: behind `OidcAuthGuard` from `adapters/nestjs` (`@UseGuards`, memory store, module without routes);
 * - `passport-jwt`: behind `@nestjs/passport`'s `AuthGuard('jwt')` with passport-jwt verifying an IdP-style
 *   RS256 JWT, keys from jwks-rsa's `passportJwtSecret` (cache on) over a loopback JWKS, `iss` and `aud` checked.
 * The harness owns the `node:http` server: the Express app Nest runs on is the listener.
 */
import 'reflect-metadata';
import { Controller, Get, Injectable, Module, UseGuards, type CanActivate, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AuthGuard, PassportModule, PassportStrategy } from '@nestjs/passport';
import { ExpressAdapter } from '@nestjs/platform-express';
import jwksRsa from 'jwks-rsa';
import { ExtractJwt, Strategy as JwtStrategy } from 'passport-jwt';
import { OidcAuthGuard, OidcMachineAuthModule } from '../../adapters/nestjs/index.js';
import { expressApp, HELLO } from '../lib/express-app.js';
import {
  AUDIENCE,
  forgeIdpToken,
  ISSUER,
  loggedInEngine,
  makeIdpKey,
  signIdpToken,
} from '../lib/fixtures.js';
import { startBenchServer } from '../lib/server-kit.js';
import { helloSpec } from '../lib/smoke.js';

const variant = process.env.BENCH_VARIANT || 'bare';

@Controller()
class BareController {
  @Get('hello')
  hello() {
    return HELLO;
  }
}

@Controller()
@UseGuards(OidcAuthGuard)
class GuardController {
  @Get('hello')
  hello() {
    return HELLO;
  }
}

@Injectable()
class NoopGuard implements CanActivate {
  canActivate() {
    return true;
  }
}

@Controller()
@UseGuards(NoopGuard)
class NoopGuardController {
  @Get('hello')
  hello() {
    return HELLO;
  }
}

@Controller()
@UseGuards(AuthGuard('jwt'))
class PassportJwtController {
  @Get('hello')
  hello() {
    return HELLO;
  }
}

await startBenchServer(async (port) => {
  const key = makeIdpKey('RS256');
  let imports: Type<unknown>[] | ReturnType<typeof OidcMachineAuthModule.forRoot>[] = [];
  let controller: Type<unknown> = BareController;
  const providers: Type<unknown>[] = [];
  let token: string | undefined;
  let forged = '';
  if (variant === 'guard') {
    const engine = await loggedInEngine(key);
    ({ token, forged } = engine);
    imports = [OidcMachineAuthModule.forRoot({ auth: engine.auth, prefix: false })];
    controller = GuardController;
  } else if (variant === 'noop-guard') {
    controller = NoopGuardController;
  } else if (variant === 'passport-jwt') {
    @Injectable()
    class JwtIdpStrategy extends PassportStrategy(JwtStrategy, 'jwt') {
      constructor() {
        super({
          jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
          secretOrKeyProvider: jwksRsa.passportJwtSecret({
            jwksUri: `http://127.0.0.1:${port}/.well-known/jwks.json`,
            cache: true,
            rateLimit: true,
          }),
          issuer: ISSUER,
          audience: AUDIENCE,
          algorithms: ['RS256'],
        });
      }
      validate(payload: unknown) {
        return payload;
      }
    }
    imports = [PassportModule];
    providers.push(JwtIdpStrategy);
    controller = PassportJwtController;
    token = await signIdpToken(key);
    forged = await forgeIdpToken(key);
  } else if (variant !== 'bare') {
    throw new Error(`unknown BENCH_VARIANT ${JSON.stringify(variant)}`);
  }
  @Module({ imports, controllers: [controller], providers })
  class BenchModule {}
  const express = expressApp();
  const app = await NestFactory.create(BenchModule, new ExpressAdapter(express), { logger: false });
  await app.init();
  return {
    listener: express,
    documents: { '/.well-known/jwks.json': { keys: [key.publicJwk] } },
    spec: helloSpec(token ? { variant } : { variant }, token, forged),
  };
});
