#!/bin/sh
# Image size and boot-to-banner time per architecture (builds what is missing first).
# usage: image/report.sh [ARCH...]      BOOTS=N for the median of N first boots
set -eu
cd "$(dirname "$0")"
exec python3 report.py "$@"
