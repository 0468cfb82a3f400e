#!/usr/bin/env bash
# dpop-proof.sh: DPoP (RFC 9449) proofs for a pipeline step, with bash, openssl and coreutils only.
#
#   dpop-proof.sh METHOD URL [ACCESS_TOKEN] [NONCE]   print a proof JWT for one request
#   dpop-proof.sh jkt                                 print the key's RFC 7638 thumbprint (cnf.jkt)
#   dpop-proof.sh der-to-jose < sig.der               DER ECDSA signature -> 64-byte r||s (RFC 7518 §3.4)
#
# The key is an EC P-256 key (ES256) in $DPOP_KEY_FILE, made on first use with mode 600; default
# $RUNNER_TEMP (GitHub) or $AGENT_TEMPDIRECTORY (Azure DevOps) or $TMPDIR, /dpop-key.pem. Make one per
# job and delete it with the job's temp directory: a token bound to it is worth nothing without it.
#
# The access token may come from $DPOP_ACCESS_TOKEN instead of the argument (arguments show in `ps`).
# It is only hashed (ath), never printed. URL is the request's absolute URL; its query and fragment are
# dropped (htu, RFC 9449 §4.2). NONCE is the server's latest DPoP-Nonce header (RFC 9449 §8, §9).
set -euo pipefail
umask 077

KEY=${DPOP_KEY_FILE:-${RUNNER_TEMP:-${AGENT_TEMPDIRECTORY:-${TMPDIR:-/tmp}}}/dpop-key.pem}

die() {
  echo "dpop-proof.sh: $*" >&2
  exit 2
}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# hex text on stdin -> bytes on stdout
unhex() {
  local hex escaped=''
  hex=$(tr -d ' \n')
  while [ -n "$hex" ]; do
    escaped+="\\x${hex:0:2}"
    hex=${hex:2}
  done
  printf '%b' "$escaped"
}

ensure_key() {
  [ -s "$KEY" ] && return 0
  local tmp="$KEY.$$"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp" 2>/dev/null || die "openssl could not make a P-256 key"
  mv "$tmp" "$KEY"
}

# The public key as JWK members: the uncompressed point 04||X||Y is the last 65 bytes of the
# SubjectPublicKeyInfo DER of a P-256 key.
public_jwk() {
  local point
  point=$(openssl pkey -in "$KEY" -pubout -outform DER 2>/dev/null | tail -c 65 | od -An -v -tx1 | tr -d ' \n')
  [ "${#point}" -eq 130 ] && [ "${point:0:2}" = 04 ] || die "$KEY is not an EC P-256 key"
  X=$(printf '%s' "${point:2:64}" | unhex | b64url)
  Y=$(printf '%s' "${point:66:64}" | unhex | b64url)
}

# One DER INTEGER (hex, from position $2 of $1) -> 32 bytes big-endian as 64 hex digits; sets NEXT.
der_integer() {
  local der=$1 at=$2 len value
  [ "${der:at:2}" = 02 ] || die "signature is not DER ECDSA (no INTEGER)"
  len=$((16#${der:at+2:2}))
  value=${der:at+4:len*2}
  [ "${#value}" -eq $((len * 2)) ] || die "signature is truncated"
  NEXT=$((at + 4 + len * 2))
  while [ "${#value}" -gt 64 ] && [ "${value:0:2}" = 00 ]; do value=${value:2}; done # sign byte
  [ "${#value}" -le 64 ] || die "signature integer longer than 32 bytes"
  while [ "${#value}" -lt 64 ]; do value="00$value"; done # minimal encoding dropped leading zeros
  INTEGER=$value
}

# DER ECDSA-Sig-Value (SEQUENCE { r INTEGER, s INTEGER }) on stdin -> r||s, 64 bytes (RFC 7518 §3.4)
der_to_jose() {
  local der r
  der=$(od -An -v -tx1 | tr -d ' \n')
  [ "${der:0:2}" = 30 ] || die "signature is not DER ECDSA (no SEQUENCE)"
  [ $((16#${der:2:2})) -lt 128 ] || die "signature SEQUENCE too long for P-256"
  [ $((16#${der:2:2} * 2 + 4)) -eq "${#der}" ] || die "signature length does not match its SEQUENCE"
  der_integer "$der" 4
  r=$INTEGER
  der_integer "$der" "$NEXT"
  [ "$NEXT" -eq "${#der}" ] || die "signature has trailing bytes"
  printf '%s%s' "$r" "$INTEGER" | unhex
}

case "${1:-}" in
  jkt)
    ensure_key
    public_jwk
    # RFC 7638 §3: the required members in lexicographic order, no whitespace.
    printf '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' "$X" "$Y" | openssl dgst -sha256 -binary | b64url
    echo
    exit 0
    ;;
  der-to-jose)
    der_to_jose
    exit 0
    ;;
  '' | -h | --help)
    sed -n '2,14p' "$0" >&2
    exit 2
    ;;
esac

[ $# -ge 2 ] && [ $# -le 4 ] || die "usage: dpop-proof.sh METHOD URL [ACCESS_TOKEN] [NONCE]"
METHOD=$1
URL=$2
TOKEN=${3:-${DPOP_ACCESS_TOKEN:-}}
NONCE=${4:-}
[[ $METHOD =~ ^[A-Z]+$ ]] || die "METHOD must be an upper-case HTTP method"
HTU=${URL%%#*}
HTU=${HTU%%\?*}
URL_FORM='^([Hh][Tt][Tt][Pp][Ss]?://)([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[]A-Za-z0-9._~%!$&'\''()*+,;=:@/[-]*)?$'
[[ $HTU =~ $URL_FORM ]] || die "URL must be an absolute http(s) URL"
# The WHATWG URL form servers compare against: scheme and host lower case, a path of at least "/".
SCHEME=${BASH_REMATCH[1],,}
HOST=${BASH_REMATCH[2],,}
PORT=${BASH_REMATCH[3]}
{ [ "$SCHEME$PORT" = "https://:443" ] || [ "$SCHEME$PORT" = "http://:80" ]; } && PORT=''
HTU="$SCHEME$HOST$PORT${BASH_REMATCH[4]:-/}"
NQCHARS='^[]!#-[^-~]+$'
[ -z "$NONCE" ] || [[ $NONCE =~ $NQCHARS ]] || die "NONCE must be NQCHARs (RFC 9449 §8.1)"

ensure_key
public_jwk
HEADER=$(printf '{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":"%s","y":"%s"}}' "$X" "$Y" | b64url)
CLAIMS=$(printf '{"jti":"%s","htm":"%s","htu":"%s","iat":%s' "$(openssl rand 16 | b64url)" "$METHOD" "$HTU" "$(date +%s)")
if [ -n "$TOKEN" ]; then
  # printf is a bash builtin: the token never appears in a process's arguments.
  CLAIMS+=$(printf ',"ath":"%s"' "$(printf '%s' "$TOKEN" | openssl dgst -sha256 -binary | b64url)")
fi
[ -z "$NONCE" ] || CLAIMS+=$(printf ',"nonce":"%s"' "$NONCE")
PAYLOAD=$(printf '%s}' "$CLAIMS" | b64url)
SIGNATURE=$(printf '%s.%s' "$HEADER" "$PAYLOAD" | openssl dgst -sha256 -sign "$KEY" | der_to_jose | b64url)
printf '%s.%s.%s\n' "$HEADER" "$PAYLOAD" "$SIGNATURE"
