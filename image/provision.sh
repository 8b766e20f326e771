#!/bin/sh
# Copy provisioning files (provision.conf, users.csv, syslog-ca.pem) into the /provision folder of the EFI
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

[ -d "$dir" ] || { echo "provision: $dir is not a directory" >&2; exit 2; }
if [ ! -f "$dir/provision.conf" ] && [ ! -f "$dir/users.csv" ]; then
    echo "provision: $dir has neither provision.conf nor users.csv" >&2
    exit 2
fi

# A disk provisioned before already has /provision (the appliance keeps its APPLIED
# record there): mmd would then stop on an interactive name-clash prompt, so create the
# folder only when it is missing. stdin is closed for every mtools call: whatever else
# prompts fails at once instead of waiting on the terminal.
if ! mdir -b -i "$img" ::/provision >/dev/null 2>&1 </dev/null; then
    mmd -i "$img" ::/provision </dev/null || { echo "provision: cannot create /provision on the ESP of $disk" >&2; exit 1; }
fi
for f in provision.conf users.csv syslog-ca.pem; do
    if [ -f "$dir/$f" ]; then
        mcopy -o -i "$img" "$dir/$f" "::/provision/$f" </dev/null
        echo "provision: $f -> $disk (ESP /provision)"
    fi
done
