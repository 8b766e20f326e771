#!/bin/sh
# Every package the daemon builds from Cargo.lock declares a rust-version no newer than the
# crate's own (Cargo.toml), so the Rust that Buildroot ships for it (check.sh, toolchain)
# builds the locked tree: cargo refuses a dependency that declares a newer rust-version.
# Walks the resolved graph from the crate over normal and build dependencies (proc macros
# and build scripts included, dev-dependencies not) for the image's two targets.
# Offline: reads Cargo.lock and the crates cargo already downloaded (after any build).
#
# usage: buildroot/check-msrv.sh     (exit 0: every locked package fits, 1: some do not)
#   MSRV=X.Y   compare against X.Y instead of Cargo.toml's rust-version (what would break)
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
meta=$(mktemp)
trap 'rm -f "$meta"' EXIT
if ! cargo metadata --manifest-path "$TOP/Cargo.toml" --format-version 1 --locked --offline \
    --filter-platform x86_64-unknown-linux-gnu --filter-platform aarch64-unknown-linux-gnu \
    > "$meta" 2> "$meta.err"; then
    echo "check-msrv: cargo metadata failed (run a cargo build first): $(tail -n1 "$meta.err")" >&2
    rm -f "$meta.err"
    exit 2
fi
rm -f "$meta.err"

exec python3 - "$meta" "${MSRV:-}" <<'PY'
import json
import sys

meta = json.load(open(sys.argv[1]))
packages = {p["id"]: p for p in meta["packages"]}
root = meta["resolve"]["root"]
want = sys.argv[2] or packages[root].get("rust_version")
if not want:
    sys.exit("check-msrv: no rust-version in Cargo.toml")


def key(v):
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
seen, todo = {root}, [root]
while todo:
    for dep in nodes[todo.pop()]["deps"]:
        if any(k["kind"] != "dev" for k in dep["dep_kinds"]) and dep["pkg"] not in seen:
            seen.add(dep["pkg"])
            todo.append(dep["pkg"])
seen.discard(root)
too_new = []
declared = 0
for pid in seen:
    p = packages[pid]
    rv = p.get("rust_version")
    if rv:
        declared += 1
        if key(rv) > key(want):
            too_new.append(f"{p['name']} {p['version']} needs {rv}")
newest = max((packages[p]["rust_version"] for p in seen if packages[p].get("rust_version")), key=key)
if too_new:
    print(f"FAIL  msrv: {len(too_new)} of {len(seen)} locked packages need a Rust newer than {want}: "
          + ", ".join(sorted(too_new)))
    sys.exit(1)
print(f"PASS  msrv: all {len(seen)} locked packages build with Rust {want} "
      f"({declared} declare a rust-version, the newest {newest})")
PY
