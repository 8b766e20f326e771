#!/bin/sh
# The image part of CI: install what the image needs, build both images, run the image
# tests (x86_64; aarch64 too unless IMAGE_ARCHS says otherwise) and print the report.
# Meant to be called from .ci/run:  bash image/ci.sh
set -eu
cd "$(dirname "$0")/.."
archs=${IMAGE_ARCHS:-x86_64 aarch64}

image/deps.sh > image-deps.log 2>&1 || { tail -n 50 image-deps.log; exit 1; }
for a in $archs; do
    image/build.sh "$a"
done
sel=$(echo "$archs" | sed 's/ / or /g')
python3 -m pytest -q -s tests/image -k "not (x86_64 or aarch64) or $sel"
image/report.sh $archs
