#!/usr/bin/env bash
# dpop-curl.sh: one HTTP request with a fresh DPoP proof (RFC 9449), for a pipeline step.
#
#   dpop-curl.sh METHOD URL [curl options...]
#
# - Sends `DPoP: <proof>` made by dpop-proof.sh (same key, $DPOP_KEY_FILE), and, when
#   $DPOP_ACCESS_TOKEN is set, `Authorization: DPoP $DPOP_ACCESS_TOKEN` with the proof's ath. Both
#   headers go through a private file, never through a process's arguments.
# - POST, PUT and PATCH send stdin as the body (read once, so it can be sent again).
# - When the server asks for a nonce (400 or 401, `use_dpop_nonce`, a DPoP-Nonce header; RFC 9449
#   §8 and §9) the request is sent once more with it. The latest nonce of each server is kept in
#   $DPOP_KEY_FILE.nonces for the next calls (§8.2).
# - Prints the answer body; on HTTP 400 and above prints the status and body to stderr and exits 22
#   (like curl --fail). Other curl failures exit with curl's code.
set -euo pipefail
umask 077

[ $# -ge 2 ] || {
  sed -n '2,16p' "$0" >&2
  exit 2
}
METHOD=$1
URL=$2
shift 2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DPOP_KEY_FILE=${DPOP_KEY_FILE:-${RUNNER_TEMP:-${AGENT_TEMPDIRECTORY:-${TMPDIR:-/tmp}}}/dpop-key.pem}
NONCES="$DPOP_KEY_FILE.nonces"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

[[ $URL =~ ^([A-Za-z]+://[^/?#]+) ]] || {
  echo "dpop-curl.sh: URL must be absolute" >&2
  exit 2
}
ORIGIN=${BASH_REMATCH[1],,}

BODY=()
case "$METHOD" in
  POST | PUT | PATCH)
    cat >"$WORK/body"
    BODY=(--data-binary "@$WORK/body")
    ;;
esac

nonce_of_origin() { [ -f "$NONCES" ] && awk -v o="$ORIGIN" '$1 == o { n = $2 } END { if (n) print n }' "$NONCES" || true; }

remember_nonce() {
  local nonce
  nonce=$(tr -d '\r' <"$WORK/headers" | awk 'tolower($1) == "dpop-nonce:" { n = $2 } END { print n }')
  [ -n "$nonce" ] || return 0
  { [ -f "$NONCES" ] && awk -v o="$ORIGIN" '$1 != o' "$NONCES"; printf '%s %s\n' "$ORIGIN" "$nonce"; } >"$WORK/nonces"
  mv "$WORK/nonces" "$NONCES"
}

attempt() {
  local proof
  proof=$(bash "$HERE/dpop-proof.sh" "$METHOD" "$URL" "" "$(nonce_of_origin)")
  printf 'DPoP: %s\n' "$proof" >"$WORK/request-headers"
  [ -z "${DPOP_ACCESS_TOKEN:-}" ] || printf 'Authorization: DPoP %s\n' "$DPOP_ACCESS_TOKEN" >>"$WORK/request-headers"
  STATUS=$(curl -sS -X "$METHOD" -H "@$WORK/request-headers" ${BODY[@]+"${BODY[@]}"} \
    -D "$WORK/headers" -o "$WORK/answer" -w '%{http_code}' "$@" "$URL")
  remember_nonce
}

asks_for_nonce() {
  [ "$STATUS" = 400 ] || [ "$STATUS" = 401 ] || return 1
  grep -qi '^dpop-nonce:' "$WORK/headers" || return 1
  grep -i '^www-authenticate:' "$WORK/headers" | grep -q 'use_dpop_nonce' && return 0
  grep -q '"use_dpop_nonce"' "$WORK/answer"
}

attempt "$@"
if asks_for_nonce; then attempt "$@"; fi
if [ "$STATUS" -ge 400 ]; then
  echo "dpop-curl.sh: HTTP $STATUS" >&2
  cat "$WORK/answer" >&2
  echo >&2
  exit 22
fi
cat "$WORK/answer"
