#!/bin/sh
# How the captures in this directory were made (as root, on the project's 2-vCPU KVM guest).
# ROUNDS interleaved rounds of five conditions, so that the machine's changing load (it is shared
# with other jobs' CPU-bound processes) falls on all of them alike; `uptime` before every capture
# goes into its header (uptime_before=) and into manifest.tsv.
#   p<N>_r<R>: munmap_storm with N pages, paced at PERIOD_US per flushing call, so every page
#              count sends its IPIs at the same rate and only the pages differ
#   u1_r<R>:   1 page, unpaced (the loop's own rate, as in ../handler_split/): same pages as p1,
#              a shorter period, to isolate the period's effect on delivery
# Stored filtered (to keep the repository small): every tlb_flush "local ..." line (a CPU's own
# flushes: no pairs come from them), and the lines of *other* tasks that are their own shootdown
# starts ("remote IPI send") or local csd=0 calls, are dropped (about 90% of the lines, mostly
# the other jobs'); every csd/ipi event of a remote call, the workload's own shootdown starts and
# local calls, and every "remote shootdown" and "task switch" flush are kept. The header says how many lines were dropped (filtered_lines=).
# Usage: tests/data/handler_split_paced/record.sh [ROUNDS=12] [PERIOD_US=400] [SECONDS=1] [FIRST=1]
# (rounds FIRST..ROUNDS; FIRST > 1 appends to manifest.tsv)
set -eu
ROUNDS=${1:-12}; PERIOD_US=${2:-400}; SECONDS_=${3:-1}; FIRST=${4:-1}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
bin=/tmp/mcsmp-build/munmap_storm
mkdir -p /tmp/mcsmp-build
gcc -O2 -pthread -o "$bin" "$repo/benchmarks/workloads/munmap_storm.c"
mcsmp=${MCSMP:-$repo/.venv/bin/mcsmp}
[ "$FIRST" -gt 1 ] || printf 'file\tstart_utc\tuptime\tworkload_output\n' > "$here/manifest.tsv"
for r in $(seq "$FIRST" "$ROUNDS"); do
  for cond in p1 p4 p16 p64 u1; do
    pages=${cond#?}
    case $cond in u*) args="0.04 $pages" ;; *) args="$SECONDS_ $pages 0 $PERIOD_US" ;; esac
    f=${cond}_r$r.trace
    up=$(uptime | sed 's/^ *//')
    start=$(date -u +%H:%M:%S)
    out=$("$mcsmp" trace record --buffer-kb 16384 -o "/tmp/mcsmp-build/$f" -- "$bin" $args 2>&1 | tr '\n' ' ')
    python3 - "/tmp/mcsmp-build/$f" "$here/$f.gz" "$up" <<'PY'
import gzip, re, sys
src, dst, up = sys.argv[1:]
own = re.compile(r"^\s*munmap_storm-\d+\s")
local_flush = re.compile(r"\d+: tlb_flush: pages:-?\d+ reason:local ")
others = re.compile(r"\d+: (tlb_flush: pages:-?\d+ reason:remote IPI send|csd_function_(entry|exit): func=[^,]+, csd=0+$)")
lines = open(src).read().splitlines()
kept = [l for l in lines if not local_flush.search(l) and (own.match(l) or not others.search(l))]
n_head = next(i for i, l in enumerate(kept) if not l.startswith("# mcsmp-trace:"))
extra = [f"# mcsmp-trace: uptime_before={up}", f"# mcsmp-trace: filtered_lines={len(lines) - len(kept)}"]
with gzip.open(dst, "wt", compresslevel=9) as f:
    f.write("\n".join(kept[:n_head] + extra + kept[n_head:]) + "\n")
PY
    rm -f "/tmp/mcsmp-build/$f"
    printf '%s\t%s\t%s\t%s\n' "$f.gz" "$start" "$up" "$out" >> "$here/manifest.tsv"
    echo "$f: $up | $out"
  done
done
