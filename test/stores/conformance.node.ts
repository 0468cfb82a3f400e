/**
 * The exported conformance suites under `node:test` (no vitest): run by
 * test/stores/node-test.test.ts as `node --import tsx --test test/stores/conformance.node.ts`.
 * With CONFORMANCE_FLAW set to a flaw of FlawedTokenStore, the token suite runs on a store broken
 * that way instead, to show node:test reports the failures.
 */
import { after, before, describe, it } from 'node:test';
import { MemoryIdentityStore, MemoryTokenStore } from '../../src/stores/memory.js';
import { identityStoreConformance, tokenStoreConformance } from '../../src/testing/index.js';
import type { TokenStore } from '../../src/types.js';
import { FakeBackend, FlawedTokenStore, type Flaws } from './flawed-store.js';

const test = { describe, it, before, after };
const flaw = process.env.CONFORMANCE_FLAW as keyof Flaws | undefined;

let create: () => TokenStore;
if (flaw) {
  const backend = new FakeBackend();
  create = () => new FlawedTokenStore(backend, { [flaw]: true });
} else {
  const tokens = new MemoryTokenStore({ sweepIntervalMs: 0 });
  create = () => tokens;
}
tokenStoreConformance({ name: flaw ? `FlawedTokenStore (${flaw})` : 'MemoryTokenStore', test, create });

const identities = new MemoryIdentityStore();
identityStoreConformance({ name: 'MemoryIdentityStore', test, create: () => identities });
