import 'reflect-metadata';
import { Controller, Get, UseGuards, type INestApplication } from '@nestjs/common';
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import {
  OidcAuthBodyErrorFilter,
  OidcAuthContext,
  OidcAuthGuard,
  OidcAuthorize,
  OidcMachineAuthModule,
} from '../../adapters/nestjs/index.js';
import type { AuthContext, OidcAuth } from '../../src/index.js';
import { describeAdapterConformance, type MountedApp } from './conformance.js';

/** The conformance host routes, behind the guard per route. */
@Controller()
class HostController {
  @Get('/api/v3/secrets/raw')
  @UseGuards(OidcAuthGuard)
  secrets(@OidcAuthContext() auth: AuthContext) {
    const { identityId, clientIp, metadata } = auth;
    return { identityId, clientIp, metadata };
  }

  @Get('/admin')
  @UseGuards(OidcAuthGuard)
  @OidcAuthorize((auth) => auth.metadata.role === 'admin')
  admin() {
    return { ok: true };
  }
}

/** Listen on 127.0.0.1 with an ephemeral port and return the URL. */
export async function listen(app: INestApplication): Promise<MountedApp> {
  await app.listen(0, '127.0.0.1');
  const address = app.getHttpServer().address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}`, close: () => app.close() };
}

async function hostModule(auth: OidcAuth) {
  return Test.createTestingModule({
    imports: [OidcMachineAuthModule.forRoot({ auth })],
    controllers: [HostController],
  }).compile();
}

describeAdapterConformance('nestjs (express platform)', async (auth, { trustProxy }) => {
  const moduleRef = await hostModule(auth);
  const app = moduleRef.createNestApplication<NestExpressApplication>(new ExpressAdapter(), {
    logger: false,
  });
  if (trustProxy) app.set('trust proxy', 'loopback');
  app.useGlobalFilters(app.get(OidcAuthBodyErrorFilter));
  return listen(app);
});

describeAdapterConformance('nestjs (fastify platform)', async (auth, { trustProxy }) => {
  const moduleRef = await hostModule(auth);
  const app = moduleRef.createNestApplication(
    // Nest's Fastify JSON parser refuses `__proto__` and `constructor.prototype` keys unless told to drop them (HTTP-06).
    new FastifyAdapter({
      onProtoPoisoning: 'remove',
      onConstructorPoisoning: 'remove',
      ...(trustProxy ? { trustProxy: 'loopback' } : {}),
    }),
    { logger: false },
  );
  app.useGlobalFilters(app.get(OidcAuthBodyErrorFilter));
  return listen(app);
});
