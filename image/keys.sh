#!/bin/sh
# Make the development update keys once: a CA (its certificate goes into the image as
# /etc/rauc/ca.cert.pem, RAUC's keyring) and a signing certificate issued by it (signs
# bundles: make bundle). Production builds put their own CA and signer in KEYS_DIR instead
# (keep the CA key offline; the signing key is all a build machine needs).
#
# usage: image/keys.sh [KEYS_DIR]     (default image/out/keys)
# result: KEYS_DIR/{ca.cert.pem,ca.key.pem,signing.cert.pem,signing.key.pem}
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-${KEYS_DIR:-$TOP/image/out/keys}}
if [ -f "$dir/ca.cert.pem" ] && [ -f "$dir/signing.cert.pem" ] && [ -f "$dir/signing.key.pem" ]; then
    exit 0
fi
mkdir -p "$dir"
umask 077
cn=${KEYS_CN:-Outguard development}
openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -sha256 \
    -subj "/O=Outguard/CN=$cn update CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$dir/ca.key.pem" -out "$dir/ca.cert.pem" 2>/dev/null
openssl req -newkey rsa:3072 -nodes -sha256 -subj "/O=Outguard/CN=$cn update signer" \
    -keyout "$dir/signing.key.pem" -out "$dir/signing.csr" 2>/dev/null
# No extendedKeyUsage: rauc 1.8 checks the S/MIME signing purpose, which a codeSigning-only
# certificate fails ("unsuitable certificate purpose").
printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" > "$dir/signing.ext"
openssl x509 -req -in "$dir/signing.csr" -CA "$dir/ca.cert.pem" -CAkey "$dir/ca.key.pem" \
    -CAcreateserial -days 3650 -sha256 -extfile "$dir/signing.ext" \
    -out "$dir/signing.cert.pem" 2>/dev/null
rm -f "$dir/signing.csr" "$dir/signing.ext"
chmod 0644 "$dir/ca.cert.pem" "$dir/signing.cert.pem"
echo "keys: development update keys in $dir"
