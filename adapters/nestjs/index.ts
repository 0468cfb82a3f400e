export { OidcMachineAuthModule, type OidcMachineAuthAsyncOptions } from './module.js';
export {
  OidcAuthGuard,
  OidcAuthContext,
  OidcAuthorize,
  OidcPublic,
  OIDC_AUTHORIZE,
  OIDC_PUBLIC,
} from './guard.js';
export { OidcAuthBodyErrorFilter } from './routes.js';
export { OidcAuthHttpException } from './exception.js';
export {
  OIDC_MACHINE_AUTH,
  OIDC_MACHINE_AUTH_OPTIONS,
  type OidcMachineAuthOptions,
  type OidcMachineAuthModuleExtras,
  type OidcIntrospectionOptions,
  type OidcRouteGuard,
} from './options.js';
