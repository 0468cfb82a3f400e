import { createOidcAuth, type OidcAuth, type OidcAuthOptions } from '../../src/index.js';
import type { AuthEvent, IdentityConfigInput } from '../../src/types.js';
import { ISSUER, makeKey, type TestKey } from './jwt.js';

/** A settable epoch-ms clock. */
export class FakeClock {
  constructor(public ms = Date.UTC(2026, 0, 1)) {}
  now = () => this.ms;
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

/** Captures events and log lines, so tests can assert on them (and that no token leaks into them). */
export class Recorder {
  events: AuthEvent[] = [];
  logs: Array<{ level: string; obj: object; msg?: string }> = [];
  onEvent = (event: AuthEvent) => void this.events.push(event);
  logger = {
    debug: (obj: object, msg?: string) => void this.logs.push({ level: 'debug', obj, msg }),
    info: (obj: object, msg?: string) => void this.logs.push({ level: 'info', obj, msg }),
    warn: (obj: object, msg?: string) => void this.logs.push({ level: 'warn', obj, msg }),
    error: (obj: object, msg?: string) => void this.logs.push({ level: 'error', obj, msg }),
  };
  /** Everything recorded, serialised. */
  dump(): string {
    return JSON.stringify({ events: this.events, logs: this.logs });
  }
  last(type: AuthEvent['type']): AuthEvent | undefined {
    return this.events.filter((e) => e.type === type).at(-1);
  }
}

export const SIGNING_KEYS = { k1: 'a-test-signing-secret-of-at-least-32-bytes!!' };

/** An identity bound like a GitHub Actions deploy job, keyed by static public keys. */
export function githubIdentity(
  key: TestKey,
  overrides: Partial<IdentityConfigInput> = {},
): IdentityConfigInput {
  return {
    identityId: 'gh-deployer',
    publicKeys: [key.publicJwk],
    boundIssuer: ISSUER,
    boundSubject: 'repo:acme-corp/payments-api:ref:refs/heads/main',
    boundAudiences: 'https://github.com/acme-corp',
    boundClaims: { repository_id: '612345678' },
    claimMetadataMapping: { repository: 'repository', ref: 'ref' },
    metadata: { role: 'deployer' },
    ...overrides,
  };
}

export interface TestEngine {
  auth: OidcAuth;
  clock: FakeClock;
  key: TestKey;
  rec: Recorder;
}

/** An engine with one GitHub-like identity, a fake clock and a recorder. */
export function makeEngine(
  options: {
    key?: TestKey;
    identities?: IdentityConfigInput[];
    identity?: Partial<IdentityConfigInput>;
    auth?: Partial<OidcAuthOptions>;
  } = {},
): TestEngine {
  const key = options.key ?? makeKey('RS256');
  const clock = new FakeClock();
  const rec = new Recorder();
  const auth = createOidcAuth({
    identities: options.identities ?? [githubIdentity(key, options.identity)],
    signingKeys: SIGNING_KEYS,
    clock: clock.now,
    onEvent: rec.onEvent,
    logger: rec.logger,
    ...options.auth,
  });
  return { auth, clock, key, rec };
}
