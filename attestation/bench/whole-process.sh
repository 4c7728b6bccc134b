#!/usr/bin/env bash
# Whole-process time of `vigil-verify` on one real report with its full chain, beside
# `snpguest verify attestation` on the same report, in the same run.
#
#   attestation/bench/whole-process.sh [CASE]      (CASE: genoa-v3 (default), milan-v3, turin-v5, genoa-v5)
#
# vigil-verify checks the report, the whole chain to the pinned ARK (three RSA-PSS
# signatures, cold: a new process has no cache), the X.509 profile, TCB/hwID and the
# default policy. snpguest's `verify attestation` checks the report signature and the TCB
# fields only (not the chain). Uses hyperfine when present, else times N runs itself.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
case="${1:-genoa-v3}"
data="$here/testdata/snp/$case"
runs="${RUNS:-200}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/../target}"
cargo build -q --release -p attestation --bin vigil-verify
vv="$CARGO_TARGET_DIR/release/vigil-verify"
model="$(echo "$case" | cut -d- -f1)"
vv_cmd="$vv $data/report.bin --certs $data --offline --at 2026-03-01T00:00:00Z"
"$vv" "$data/report.bin" --certs "$data" --offline --at 2026-03-01T00:00:00Z >/dev/null || {
  echo "vigil-verify did not verify $case" >&2; exit 1; }
sg="$(command -v snpguest || true)"
if [ -z "$sg" ]; then
  echo "NOTE: snpguest is not installed (cargo install snpguest); measuring vigil-verify only."
fi
sg_cmd="$sg verify attestation -p $model $data $data/report.bin"
if command -v hyperfine >/dev/null; then
  if [ -n "$sg" ]; then
    hyperfine -N --warmup 20 --runs "$runs" -n vigil-verify "$vv_cmd" -n snpguest "$sg_cmd"
  else
    hyperfine -N --warmup 20 --runs "$runs" -n vigil-verify "$vv_cmd"
  fi
else
  t() { local s e; s=$(date +%s%N); for _ in $(seq "$runs"); do $1 >/dev/null; done; e=$(date +%s%N);
        echo "$2: $(( (e - s) / runs / 1000 )) us per run (mean of $runs)"; }
  t "$vv_cmd" vigil-verify
  [ -n "$sg" ] && t "$sg_cmd" snpguest
fi
