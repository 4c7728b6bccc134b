#!/usr/bin/env bash
# Peak memory (maximum resident set size, /usr/bin/time -v) of vigil-verify with
# /dev/zero on each input option, beside a normal verification of a real report.
# Every input is read with a limit fitted to its format (src/limits.rs), so each run
# stops after limit + 1 bytes. Usage: attestation/bench/dev-zero-memory.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p attestation --bin vigil-verify
bin="${CARGO_TARGET_DIR:-target}/debug/vigil-verify"
g=attestation/testdata/snp/genoa-v3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '\0\0\0\0\0\0\0\0' > "$tmp/m.bin"
base=("$g/report.bin" --offline --at 2026-03-01T00:00:00Z)
run() {
  local label=$1; shift
  local start end
  start=$(date +%s%N)
  set +e
  /usr/bin/time -v "$bin" "$@" > /dev/null 2> "$tmp/err"
  local code=$?
  set -e
  end=$(date +%s%N)
  local kb
  kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/err")
  printf '%-28s exit %s  peak %6s KiB  %5s ms\n' "$label" "$code" "$kb" $(( (end - start) / 1000000 ))
}
run "verified (genoa-v3, --certs)" "${base[@]}" --certs "$g"
run "REPORT=/dev/zero" /dev/zero --offline --certs "$g"
for opt in --certs --vcek --chain --trust-root --cert-table --crl --policy --refs; do
  run "$opt /dev/zero" "${base[@]}" "$opt" /dev/zero
done
run "--manifest /dev/zero" "${base[@]}" --nonce 00 --manifest /dev/zero
run "--event-log /dev/zero" "${base[@]}" --nonce 00 --manifest "$tmp/m.bin" --event-log /dev/zero
