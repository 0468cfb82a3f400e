// The oidc-provider package ships no types; this declares the small part the demo IdP uses.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** A Koa application serving an OpenID provider for one issuer. */
  export default class Provider {
    constructor(issuer: string, configuration?: Record<string, unknown>);
    readonly issuer: string;
    /** Koa: do not log errors to stderr. */
    silent: boolean;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }
}
