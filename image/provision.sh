#!/bin/sh
# Copy provisioning files (provision.conf, users.csv) into the /provision folder of the EFI
# system partition of an Outguard disk image, with mtools (no mounting, no root needed).
# The appliance applies them on its next boot and then removes them (docs/IMAGE.md).
#
# usage: image/provision.sh DISK.img DIR
set -eu

disk=${1:?usage: provision.sh DISK DIR}
dir=${2:?usage: provision.sh DISK DIR}

# Byte offset of the partition labelled "esp" (sfdisk prints start sectors of 512 bytes).
start=$(sfdisk --json "$disk" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
print(next(p["start"] for p in t["partitions"] if p.get("name") == "esp"))')
img="$disk@@$((start * 512))"
export MTOOLS_SKIP_CHECK=1

mmd -i "$img" ::/provision 2>/dev/null || true
for f in provision.conf users.csv; do
    if [ -f "$dir/$f" ]; then
        mcopy -o -i "$img" "$dir/$f" "::/provision/$f"
        echo "provision: $f -> $disk (ESP /provision)"
    fi
done
