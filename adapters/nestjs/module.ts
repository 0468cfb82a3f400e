import {
  Inject,
  Module,
  type DynamicModule,
  type InjectionToken,
  type MiddlewareConsumer,
  type ModuleMetadata,
  type NestModule,
  type OnApplicationShutdown,
  type OptionalFactoryDependency,
  type Provider,
} from '@nestjs/common';
import { APP_GUARD, HttpAdapterHost } from '@nestjs/core';
import {
  DEFAULT_BODY_LIMIT,
  DEFAULT_PREFIX,
  createOidcAuth,
  metadataAnswer,
  recordOAuthEndpoints,
  rootMetadataPath,
  type OidcAuth,
} from '../../src/index.js';
import { setAnswerHeaders } from './exception.js';
import { OidcAuthGuard } from './guard.js';
import {
  OIDC_MACHINE_AUTH,
  OIDC_MACHINE_AUTH_OPTIONS,
  OIDC_MACHINE_AUTH_PATHS,
  isEngine,
  type OidcMachineAuthModuleExtras,
  type OidcMachineAuthOptions,
} from './options.js';
import {
  OidcAuthBodyErrorFilter,
  introspectionGuards,
  oidcAuthController,
  oidcIntrospectionController,
  routePaths,
} from './routes.js';

/** `forRootAsync`'s argument: a factory (injected like any provider) returning the options. */
export interface OidcMachineAuthAsyncOptions extends OidcMachineAuthModuleExtras {
  /** Modules whose exported providers the factory injects (e.g. `ConfigModule`). */
  imports?: ModuleMetadata['imports'];
  /** Providers passed to `useFactory`, in order. */
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  useFactory: (...args: never[]) => OidcMachineAuthOptions | Promise<OidcMachineAuthOptions>;
}

/** Which engine the module created itself, so that it closes that one only. */
const OWNED_ENGINE = Symbol('oidc-machine-auth:owned-engine');

/**
 * The NestJS module: the engine (`OIDC_MACHINE_AUTH`), {@link OidcAuthGuard}, the body error filter,
 * the login, renew, revoke and token-exchange routes under `prefix`, and with `introspection` the
 * introspection and revocation routes behind the host's guard. Global: the guard and the engine can be
 * injected in every module. Works on Nest's Express and Fastify platforms.
 */
@Module({})
export class OidcMachineAuthModule implements NestModule, OnApplicationShutdown {
  constructor(
    @Inject(OWNED_ENGINE) private readonly owned: { engine?: OidcAuth },
    @Inject(OIDC_MACHINE_AUTH_OPTIONS) private readonly options: OidcMachineAuthOptions,
    @Inject(OIDC_MACHINE_AUTH_PATHS) private readonly paths: readonly string[],
    @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
    @Inject(OIDC_MACHINE_AUTH) private readonly engine: OidcAuth,
  ) {}

  /**
   * On Fastify, gives the auth routes their own `bodyLimit` (Fastify's parser then refuses a larger
   * body, chunked or not, before reading it all). Nest calls this before it registers any route.
   */
  configure(_consumer: MiddlewareConsumer): void {
    const adapter = this.adapterHost.httpAdapter;
    if (this.paths.length === 0 || !adapter) return;
    this.serveRootMetadata();
    if (adapter.getType() !== 'fastify') return;
    const limit = this.options.bodyLimit ?? DEFAULT_BODY_LIMIT;
    const fastify = adapter.getInstance<{
      addHook(name: 'onRoute', hook: (route: { url: string; bodyLimit?: number }) => void): unknown;
    }>();
    fastify.addHook('onRoute', (route) => {
      if (this.paths.some((path) => route.url.endsWith(path))) route.bodyLimit = limit;
    });
  }

  /**
   * RFC 8414 §3.1: `GET /.well-known/oauth-authorization-server{issuer path}` at the host root (no
   * global prefix), registered on the platform directly; only when the engine has an `issuer`.
   */
  private serveRootMetadata(): void {
    const path = rootMetadataPath(this.engine);
    if (path === undefined) return;
    const adapter = this.adapterHost.httpAdapter;
    const endpoints = this.options.oauthEndpoints;
    adapter.get(path, (_request: unknown, response: unknown) => {
      const answer = metadataAnswer(this.engine, endpoints);
      setAnswerHeaders(this.adapterHost, response, answer);
      adapter.reply(response, answer.body, answer.status);
    });
  }

  /** Close the engine the module created from options (one passed in stays open). */
  async onApplicationShutdown(): Promise<void> {
    const engine = this.owned.engine;
    this.owned.engine = undefined;
    await engine?.close();
  }

  /**
   * Configure with options known up front.
   *
   * @throws {ConfigError} `guard` when `introspection` is given without a guard.
   */
  static forRoot(options: OidcMachineAuthOptions & OidcMachineAuthModuleExtras): DynamicModule {
    const { prefix, globalGuard, introspection, ...rest } = options;
    return define(
      { provide: OIDC_MACHINE_AUTH_OPTIONS, useValue: rest },
      { prefix, globalGuard, introspection },
    );
  }

  /**
   * Configure through DI: `useFactory` gets the `inject`ed providers (e.g. `ConfigService`).
   *
   * @throws {ConfigError} `guard` when `introspection` is given without a guard.
   */
  static forRootAsync(options: OidcMachineAuthAsyncOptions): DynamicModule {
    const optionsProvider: Provider = {
      provide: OIDC_MACHINE_AUTH_OPTIONS,
      useFactory: options.useFactory as (...args: unknown[]) => OidcMachineAuthOptions,
      inject: options.inject ?? [],
    };
    return define(optionsProvider, options, options.imports);
  }
}

function define(
  optionsProvider: Provider,
  extras: OidcMachineAuthModuleExtras,
  imports: ModuleMetadata['imports'] = [],
): DynamicModule {
  const prefix = extras.prefix === undefined ? DEFAULT_PREFIX : extras.prefix;
  const { introspection } = extras;
  // A global OidcAuthGuard already runs on the introspection routes: running it again would spend a token use twice.
  const guards =
    introspection === undefined
      ? []
      : introspectionGuards(introspection).filter((g) => !(extras.globalGuard && g === OidcAuthGuard));
  const controllers =
    prefix === false
      ? []
      : introspection === undefined
        ? [oidcAuthController(prefix)]
        : [oidcAuthController(prefix), oidcIntrospectionController(prefix, guards, introspection.authorize)];
  const providers: Provider[] = [
    optionsProvider,
    { provide: OWNED_ENGINE, useValue: {} },
    {
      provide: OIDC_MACHINE_AUTH,
      useFactory: (options: OidcMachineAuthOptions, owned: { engine?: OidcAuth }) => {
        const engine = isEngine(options.auth) ? options.auth : (owned.engine = createOidcAuth(options.auth));
        // The introspection controller is mounted: the RFC 8414 metadata lists both its endpoints.
        if (introspection !== undefined && prefix !== false) {
          recordOAuthEndpoints(engine, { introspection: true, revocation: true });
        }
        return engine;
      },
      inject: [OIDC_MACHINE_AUTH_OPTIONS, OWNED_ENGINE],
    },
    {
      provide: OIDC_MACHINE_AUTH_PATHS,
      useValue: prefix === false ? [] : routePaths(prefix, introspection !== undefined),
    },
    OidcAuthGuard,
    OidcAuthBodyErrorFilter,
  ];
  if (extras.globalGuard) providers.push({ provide: APP_GUARD, useExisting: OidcAuthGuard });
  return {
    module: OidcMachineAuthModule,
    global: true,
    imports,
    providers,
    controllers,
    exports: [OIDC_MACHINE_AUTH, OIDC_MACHINE_AUTH_OPTIONS, OidcAuthGuard, OidcAuthBodyErrorFilter],
  };
}
