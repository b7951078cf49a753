#!/usr/bin/env bash
# Validate an example config on a workstation, as printed at the top of each one:
#
#   bash config/check.sh config/keycloak.toml
#
# The examples name their secrets as files under /run/secrets/portcullis/ (where
# a Kubernetes or Docker secret is mounted), and `portcullis check` insists that
# those files exist. So this script writes throwaway placeholder secrets to a
# temporary directory (deleted on exit) and points the example at them with the
# same PORTCULLIS_<SECTION>__<KEY>_FILE variables an operator would use:
#
#   oidc.client_secret_file       a random client secret
#   providers.NAME.client_secret_file  one more for each such provider
#   connections.NAME.client_secret_file  one more for each connected-account service
#   admin.connections_api_token_file    a random 32-byte token
#   session.secret_file           32 random bytes, base64
#   session.previous_secrets_file one more such key
#   session.redis_url_file        redis://:<random password>@127.0.0.1:6379/0
#
# Only the *_file keys the example itself names are replaced; everything else is
# checked as written. Any PORTCULLIS_* variable of your shell is ignored here,
# since it would change what is checked. `portcullis check` then prints the
# effective configuration, secrets as "[redacted]", or every problem it finds,
# and its exit status is this script's (0 valid, 1 invalid).
#
# The binary, in this order:
#   1. $PORTCULLIS, when set (a path or a command name);
#   2. `portcullis` on PATH;
#   3. otherwise this repository's, through
#      `cargo run --quiet --release --bin portcullis --` (the first run compiles it).
set -euo pipefail

usage() {
    echo "usage: bash config/check.sh CONFIG.toml" >&2
    exit 2
}
[[ $# -eq 1 ]] || usage
config=$1
case $config in -h | --help) usage ;; esac
if [[ ! -f $config ]]; then
    echo "check.sh: $config: no such file" >&2
    exit 2
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The *_file secret keys the example sets, as "section.key" lines: a small TOML
# reader that follows [section] headers ([[route]] and the like included).
named_secret_files() {
    awk '
        /^[[:space:]]*\[/ {
            line = $0
            sub(/^[[:space:]]*\[+[[:space:]]*/, "", line)
            sub(/[[:space:]]*\].*$/, "", line)
            section = line
            next
        }
        /^[[:space:]]*[A-Za-z0-9_]+[[:space:]]*=/ {
            key = $0
            sub(/^[[:space:]]*/, "", key)
            sub(/[[:space:]]*=.*$/, "", key)
            print section "." key
        }
    ' "$1" | grep -Ex 'oidc\.client_secret_file|(providers|connections)\.[a-z0-9_-]+\.client_secret_file|admin\.connections_api_token_file|session\.(secret|previous_secrets|redis_url)_file' || true
}

random_base64() {
    head -c "$1" /dev/urandom | base64 | tr -d '\n'
}

# Run without the shell's own PORTCULLIS_* overrides.
while IFS= read -r name; do
    unset "$name"
done < <(compgen -e | grep '^PORTCULLIS_' || true)

secrets=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-check.XXXXXX")
trap 'rm -rf "$secrets"' EXIT
chmod 700 "$secrets"

replaced=()
# Provider names may hold "-", which no shell variable name may: these are
# passed with env(1) instead of exported.
provider_env=()
while IFS= read -r key; do
    [[ -n $key ]] || continue
    case $key in
    oidc.client_secret_file)
        random_base64 24 | tr '+/' '-_' >"$secrets/client-secret"
        export PORTCULLIS_OIDC__CLIENT_SECRET_FILE="$secrets/client-secret"
        ;;
    providers.*.client_secret_file)
        name=${key#providers.}
        name=${name%.client_secret_file}
        random_base64 24 | tr '+/' '-_' >"$secrets/client-secret.$name"
        provider_env+=("PORTCULLIS_PROVIDERS__${name^^}__CLIENT_SECRET_FILE=$secrets/client-secret.$name")
        ;;
    connections.*.client_secret_file)
        name=${key#connections.}
        name=${name%.client_secret_file}
        random_base64 24 | tr '+/' '-_' >"$secrets/connection-secret.$name"
        provider_env+=("PORTCULLIS_CONNECTIONS__${name^^}__CLIENT_SECRET_FILE=$secrets/connection-secret.$name")
        ;;
    admin.connections_api_token_file)
        random_base64 32 | tr '+/' '-_' >"$secrets/connections-api-token"
        export PORTCULLIS_ADMIN__CONNECTIONS_API_TOKEN_FILE="$secrets/connections-api-token"
        ;;
    session.secret_file)
        random_base64 32 >"$secrets/session-secret"
        export PORTCULLIS_SESSION__SECRET_FILE="$secrets/session-secret"
        ;;
    session.previous_secrets_file)
        random_base64 32 >"$secrets/previous-secrets"
        export PORTCULLIS_SESSION__PREVIOUS_SECRETS_FILE="$secrets/previous-secrets"
        ;;
    session.redis_url_file)
        printf 'redis://:%s@127.0.0.1:6379/0' "$(random_base64 18 | tr '+/' '-_')" >"$secrets/redis-url"
        export PORTCULLIS_SESSION__REDIS_URL_FILE="$secrets/redis-url"
        ;;
    esac
    replaced+=("$key")
done < <(named_secret_files "$config")

if [[ -n ${PORTCULLIS:-} ]]; then
    portcullis=("$PORTCULLIS")
elif command -v portcullis >/dev/null 2>&1; then
    portcullis=(portcullis)
else
    echo "check.sh: no portcullis on PATH (nor \$PORTCULLIS): building this repository's with cargo run --release (the first time takes a few minutes)" >&2
    portcullis=(cargo run --quiet --release --manifest-path "$repo/Cargo.toml" --bin portcullis --)
fi

if [[ ${#replaced[@]} -gt 0 ]]; then
    echo "check.sh: placeholder secrets (temporary files) for: ${replaced[*]}" >&2
fi
echo "check.sh: ${portcullis[*]} check --config $config" >&2

status=0
env ${provider_env[@]+"${provider_env[@]}"} "${portcullis[@]}" check --config "$config" || status=$?
exit "$status"
