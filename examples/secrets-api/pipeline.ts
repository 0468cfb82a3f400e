import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PIPELINE_CLIENT_ID, PIPELINE_CLIENT_SECRET } from './idp.js';

/** The secrets-api README's pipeline step, the one copy of its text. */
export const PIPELINE_STEP_FILE = fileURLToPath(new URL('./pipeline-step.sh', import.meta.url));

/** Stand-in for the Azure CLI: `az account get-access-token --resource R …` asks the demo IdP. */
const AZ_STAND_IN = `#!/usr/bin/env bash
set -euo pipefail
resource=''
while [ $# -gt 0 ]; do
  if [ "$1" = --resource ]; then resource=$2; shift; fi
  shift
done
curl -s -u "$DEMO_IDP_CLIENT" -d grant_type=client_credentials --data-urlencode "resource=$resource" \\
  "$DEMO_IDP_URL/token" | jq -er .access_token
`;

/** True when bash, curl and jq are all installed. */
export function hasPipelineTools(): boolean {
  return spawnSync('bash', ['-c', 'command -v curl && command -v jq'], { stdio: 'ignore' }).status === 0;
}

/** Where the pipeline step runs. */
export interface PipelineTarget {
  /** The secrets API, e.g. `http://127.0.0.1:8080`. */
  appUrl: string;
  /** Where the demo IdP listens (its token endpoint is `${idpUrl}/token`). */
  idpUrl: string;
  identityId: string;
  workspaceSlug: string;
}

/** What the script did. */
export interface PipelineRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run `pipeline-step.sh` with bash, a stand-in `az` on PATH and the variables the pipeline sets.
 * Asynchronous on purpose: the IdP and the app may answer its requests from this very process.
 */
export async function runPipelineStep(target: PipelineTarget, timeoutMs = 20_000): Promise<PipelineRun> {
  const bin = mkdtempSync(join(tmpdir(), 'secrets-api-az-'));
  try {
    writeFileSync(join(bin, 'az'), AZ_STAND_IN);
    chmodSync(join(bin, 'az'), 0o755);
    const child = spawn('bash', [PIPELINE_STEP_FILE], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      env: {
        ...process.env,
        PATH: `${bin}:${process.env.PATH ?? ''}`,
        APP_URL: target.appUrl,
        IDENTITY_ID: target.identityId,
        WORKSPACE_SLUG: target.workspaceSlug,
        DEMO_IDP_URL: target.idpUrl,
        DEMO_IDP_CLIENT: `${PIPELINE_CLIENT_ID}:${PIPELINE_CLIENT_SECRET}`,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const [status] = (await once(child, 'close')) as [number | null];
    return { status, stdout, stderr };
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
}
