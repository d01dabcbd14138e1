#!/bin/sh
# Entrypoint of the ca-service container image (deploy/Containerfile).
#
#   serve [serve options]    (the default) production: the key passphrase must come from a secret
#                            or the environment, never from the volume; migrations run, then
#                            `ca-service serve --require-ca`, which refuses a volume without an
#                            active issuing CA instead of making a development CA
#   --dev [serve options]    development: an empty volume gets a development CA, and its key
#                            passphrase is stored on the volume
#   init ..., issuer ...     the commands that make or use CA keys: passphrase required as for serve
#   any other arguments      a ca-service command (token create, config, --version, ...)
#
# The key passphrase: the secret /run/secrets/ca-service-key-passphrase (podman or docker
# --secret ca-service-key-passphrase), or CA_SERVICE_KEY_PASSPHRASE_FILE, or
# CA_SERVICE_KEY_PASSPHRASE. PKCS#11 PINs: the key URIs name pin-source=file:/run/secrets/<name>
# or pin-source=env:<VARIABLE>.
set -eu

secret=/run/secrets/ca-service-key-passphrase
if [ -z "${CA_SERVICE_KEY_PASSPHRASE+set}${CA_SERVICE_KEY_PASSPHRASE_FILE+set}" ] && [ -r "$secret" ]; then
    export CA_SERVICE_KEY_PASSPHRASE_FILE="$secret"
fi

refuse() {
    echo "ca-service-entrypoint: $*" >&2
    exit 1
}

require_secrets() {
    if [ -z "${CA_SERVICE_KEY_PASSPHRASE:-}${CA_SERVICE_KEY_PASSPHRASE_FILE:-}" ]; then
        refuse "no key passphrase: give the secret ca-service-key-passphrase (or set" \
            "CA_SERVICE_KEY_PASSPHRASE_FILE or CA_SERVICE_KEY_PASSPHRASE); --dev starts a development CA"
    fi
    if [ -e "${CA_SERVICE_HOME:?}/keys/passphrase" ]; then
        refuse "the volume holds a key passphrase (keys/passphrase), as a development CA does:" \
            "start with --dev, or put that passphrase into the secret and delete the file"
    fi
}

case "${1:-serve}" in
--dev)
    shift
    exec ca-service serve "$@"
    ;;
serve)
    if [ $# -gt 0 ]; then shift; fi
    require_secrets
    ca-service db upgrade
    exec ca-service serve --require-ca "$@"
    ;;
init | issuer)
    require_secrets
    exec ca-service "$@"
    ;;
*)
    exec ca-service "$@"
    ;;
esac
