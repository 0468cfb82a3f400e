import { readFileSync } from 'node:fs';
import type { AuthContext } from '../../src/index.js';

/** One project ("workspace" in Infisical's API) and its environments. */
export interface Workspace {
  id: string;
  slug: string;
  environments: string[];
}

/** One stored secret. */
export interface StoredSecret {
  id: string;
  /** Slug of the workspace it belongs to. */
  workspace: string;
  environment: string;
  secretKey: string;
  secretValue: string;
  secretComment: string;
}

/** The shape of `secrets.json`. */
export interface SecretsFile {
  workspaces: Workspace[];
  secrets: StoredSecret[];
}

/** A secret as Infisical's `GET /api/v3/secrets/raw` returns it. */
export interface RawSecret {
  id: string;
  _id: string;
  /** The workspace id. */
  workspace: string;
  environment: string;
  version: number;
  type: 'shared';
  secretKey: string;
  secretValue: string;
  secretComment: string;
  tags: never[];
}

/** The demo's secrets file, next to this module. */
export const SECRETS_FILE = new URL('./secrets.json', import.meta.url);

/** Read a secrets file. Default: {@link SECRETS_FILE}. */
export function loadSecrets(path: string | URL = SECRETS_FILE): SecretsFile {
  return JSON.parse(readFileSync(path, 'utf8')) as SecretsFile;
}

/**
 * The authorization pattern: an identity's `metadata.workspaces` (set in its config) lists the
 * workspace slugs it may read. A request that names no workspace is left to the route, which answers
 * 400; one naming a workspace that is not granted gets 403, whether or not the workspace exists.
 */
export function workspaceGranted(auth: AuthContext, slug: unknown): boolean {
  if (typeof slug !== 'string' || slug === '') return true;
  const granted = auth.metadata.workspaces;
  return Array.isArray(granted) && granted.includes(slug);
}

/** Infisical's `GET /api/v3/secrets/raw` answer for a workspace and environment, or the 400 message. */
export function readSecrets(data: SecretsFile, slug: unknown, environment: unknown): RawSecret[] | string {
  if (typeof slug !== 'string' || slug === '') return 'workspaceSlug is required';
  if (typeof environment !== 'string' || environment === '') return 'environment is required';
  const workspace = data.workspaces.find((w) => w.slug === slug);
  if (!workspace) return 'Unknown workspace';
  if (!workspace.environments.includes(environment)) return 'Unknown environment';
  return data.secrets
    .filter((s) => s.workspace === slug && s.environment === environment)
    .map((s) => ({
      id: s.id,
      _id: s.id,
      workspace: workspace.id,
      environment: s.environment,
      version: 1,
      type: 'shared',
      secretKey: s.secretKey,
      secretValue: s.secretValue,
      secretComment: s.secretComment,
      tags: [],
    }));
}
