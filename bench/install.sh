#!/usr/bin/env bash
# Installs what `make bench` needs on Debian 12, without starting any system
# MTA: Postfix (for smtp-source, smtp-sink and the private relay instance),
# Cyrus SASL's sasldb tools, SpamAssassin and openssl; aiosmtpd for simulate.py.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "bench/install.sh: run as root (apt-get, private Postfix instance)" >&2
    exit 1
fi

need=()
for pkg in postfix sasl2-bin libsasl2-modules libsasl2-modules-db spamassassin openssl; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done

if [ "${#need[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # "No configuration": the package leaves /etc/postfix/main.cf absent, so
    # its post-install scripts do not start a system instance.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The account-takeover simulation (simulate.py) uses aiosmtpd as its next hop.
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install -q aiosmtpd
# scale.py makes its users' argon2id hashes with libsodium (PyNaCl).
python3 -c 'import nacl.pwhash' 2>/dev/null || python3 -m pip install -q pynacl

# Belt and braces: no system Postfix may keep running (the bench's own
# instances use their own config and queue directories).
pidfile=/var/spool/postfix/pid/master.pid
if [ -s "$pidfile" ]; then
    pid=$(tr -d ' ' <"$pidfile")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        echo "bench/install.sh: stopping the system Postfix master (pid $pid)" >&2
        kill -TERM "$pid"
    fi
fi
