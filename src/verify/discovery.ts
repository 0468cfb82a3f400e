import { VerifyError } from './errors.js';
import { fetchJsonObject, HttpFailure, type HttpContext } from './http.js';
import { parseServerUrl } from './options.js';

/** The RFC 8414 authorization-server metadata fields the verifier uses (the rest is kept as sent). */
export interface AuthorizationServerMetadata {
  issuer: string;
  jwks_uri: string;
  introspection_endpoint?: string;
  [field: string]: unknown;
}

const WELL_KNOWN = '/.well-known/oauth-authorization-server';

/**
 * Where to look for an issuer's metadata, in order: RFC 8414 section 3.1's form (the well-known
 * suffix inserted between host and path, a terminating `/` of the path removed first), then the
 * appended form `{issuer}/.well-known/oauth-authorization-server` that some servers answer instead.
 */
export function metadataUrls(issuer: URL): URL[] {
  const path = issuer.pathname.replace(/\/$/, '');
  const inserted = new URL(`${issuer.origin}${WELL_KNOWN}${path}`);
  if (path === '') return [inserted];
  return [inserted, new URL(`${issuer.origin}${path}${WELL_KNOWN}`)];
}

/**
 * Fetch and check an issuer's metadata. A non-200 answer from the RFC 8414 section 3.1 location
 * falls back to the appended form; a metadata document whose `issuer` differs from the configured
 * issuer by a single character is refused (RFC 8414 section 3.3), with no fallback.
 */
export async function discoverMetadata(
  issuer: string,
  context: HttpContext & { allowInsecureLoopback: boolean },
): Promise<AuthorizationServerMetadata> {
  const urls = metadataUrls(new URL(issuer));
  let lastFailure: unknown;
  for (const url of urls) {
    let document: Record<string, unknown>;
    try {
      document = await fetchJsonObject(url, { headers: { accept: 'application/json' } }, context);
    } catch (cause) {
      lastFailure = cause;
      if (cause instanceof HttpFailure && cause.status !== undefined && cause.status !== 200) continue;
      throw new VerifyError(
        'metadata_unavailable',
        `authorization-server metadata at ${url.href}: ${String((cause as Error).message)}`,
        { cause },
      );
    }
    return checkMetadata(document, issuer, context.allowInsecureLoopback);
  }
  throw new VerifyError('metadata_unavailable', `no authorization-server metadata for ${issuer}`, {
    cause: lastFailure,
  });
}

function checkMetadata(
  document: Record<string, unknown>,
  issuer: string,
  allowInsecureLoopback: boolean,
): AuthorizationServerMetadata {
  if (document.issuer !== issuer) {
    throw new VerifyError(
      'metadata_issuer_mismatch',
      'the metadata issuer is not the configured issuer (RFC 8414 section 3.3)',
    );
  }
  try {
    parseServerUrl(document.jwks_uri, 'jwks_uri', allowInsecureLoopback);
    if (document.introspection_endpoint !== undefined) {
      parseServerUrl(document.introspection_endpoint, 'introspection_endpoint', allowInsecureLoopback);
    }
  } catch (cause) {
    throw new VerifyError('metadata_invalid', `metadata: ${(cause as Error).message}`, { cause });
  }
  return document as AuthorizationServerMetadata;
}
