#!/usr/bin/env bash
# Benchmark of `ppas-gateway check --json` against
# `xmllint --noout --stream --schema schema/FactficTrans.xsd` on generated
# billing files of 100 000 and 1 000 000 lines (scripts/gen_factbord.py).
#
# Prints, per size: best-of-3 wall time of each (hyperfine when installed,
# else a loop), the speed ratio (target: check >= 2.5x faster) and the peak
# RSS of check from /usr/bin/time -v (target: <= 64 MB, flat from 100k to
# 1M lines). Exits 1 when a target is missed.
#
# Usage: scripts/bench-check.sh [LINES...]     (default: 100000 1000000)
# Environment: CARGO_TARGET_DIR (default ./target), RUNS (default 3).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
runs=${RUNS:-3}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)
schema=$root/schema/FactficTrans.xsd
bin=$target/release/ppas-gateway
work=$target/bench
# The generated files are named after 15 May 2021: that is the day of receipt.
export PPAS_GATEWAY_NOW=2021-05-15T10:00:00+02:00

for tool in xmllint python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench-check: $tool is required" >&2; exit 2; }
done

echo "building ppas-gateway (release)..." >&2
cargo build --release --quiet --bin ppas-gateway
mkdir -p "$work"
# 1 000 000 lines are about 360 MB: above the default 256 MiB limit (F11).
config=$work/bench.toml
printf '[limits]\nmax_file_size = 4294967296\n' >"$config"
check=("$bin" check --json --config "$config")

# best_of CMD...: prints the best wall time in seconds over $runs runs.
best_of() {
    if command -v hyperfine >/dev/null; then
        local json=$work/hyperfine.json
        hyperfine --style none --warmup 1 --runs "$runs" --export-json "$json" -- "$(printf '%q ' "$@")" >/dev/null 2>&1
        python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["results"][0]["min"])' "$json"
    else
        local best="" t0 t1 t
        "$@" >/dev/null 2>&1 || true # warm the page cache
        for _ in $(seq "$runs"); do
            t0=$(date +%s.%N)
            "$@" >/dev/null 2>&1 || true
            t1=$(date +%s.%N)
            t=$(python3 -c "print('%.3f' % ($t1 - $t0))")
            if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $t < $best else 1)"; then best=$t; fi
        done
        echo "$best"
    fi
}

# rss_cpu CMD...: "<maximum resident set size in KiB> <user+system seconds>"
# of one run (CPU time is the steadier figure on a busy machine).
rss_cpu() {
    /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '
        /Maximum resident set size/ { rss = $2 }
        /User time \(seconds\)/ { cpu += $2 }
        /System time \(seconds\)/ { cpu += $2 }
        END { printf "%s %.2f\n", rss, cpu }'
}

fail=0
rows=()
rss_list=()
for n in "${sizes[@]}"; do
    dir=$work/$n
    file=$(python3 "$root/scripts/gen_factbord.py" "$n" --out "$dir")
    mb=$(python3 -c "import os,sys; print('%.1f' % (os.path.getsize(sys.argv[1]) / 1e6))" "$file")
    # Sanity: both tools accept the file, or the timings mean nothing.
    out=$("${check[@]}" "$file")
    case $out in *'"verdict":"accepted"'*) ;; *) echo "check did not accept $file: $out" >&2; exit 1 ;; esac
    xmllint --noout --stream --schema "$schema" "$file" 2>/dev/null || { echo "xmllint refused $file" >&2; exit 1; }

    t_check=$(best_of "${check[@]}" "$file")
    t_lint=$(best_of xmllint --noout --stream --schema "$schema" "$file")
    read -r rss_check cpu_check < <(rss_cpu "${check[@]}" "$file")
    read -r rss_lint cpu_lint < <(rss_cpu xmllint --noout --stream --schema "$schema" "$file")
    ratio=$(python3 -c "print('%.2f' % ($t_lint / max($t_check, 1e-9)))")
    rss_mb=$(python3 -c "print('%.1f' % ($rss_check / 1024))")
    rss_lint_mb=$(python3 -c "print('%.1f' % ($rss_lint / 1024))")
    rows+=("$(printf '| %9s | %8s MB | %7s s | %7s s | %5sx | %5s s / %5s s | %6s MB | %8s MB |' \
        "$n" "$mb" "$t_check" "$t_lint" "$ratio" "$cpu_check" "$cpu_lint" "$rss_mb" "$rss_lint_mb")")
    rss_list+=("$rss_check")
    python3 -c "import sys; sys.exit(0 if $ratio >= 2.5 else 1)" || { echo "MISSED: $n lines, check only ${ratio}x faster than xmllint (target 2.5x)" >&2; fail=1; }
    python3 -c "import sys; sys.exit(0 if $rss_check <= 64 * 1024 else 1)" || { echo "MISSED: $n lines, check peak RSS ${rss_mb} MB (target 64 MB)" >&2; fail=1; }
done

echo
echo "check --json vs xmllint --stream --schema; best of $runs; PPAS_GATEWAY_NOW=$PPAS_GATEWAY_NOW"
echo "$(nproc) CPU(s), $(uname -sr), $(xmllint --version 2>&1 | head -1)"
echo
echo "|     lines |        size |     check |   xmllint |  ratio | CPU check / xmllint | check RSS | xmllint RSS |"
echo "|----------:|------------:|----------:|----------:|-------:|--------------------:|----------:|------------:|"
printf '%s\n' "${rows[@]}"
if [ ${#rss_list[@]} -ge 2 ]; then
    lo=${rss_list[0]} hi=${rss_list[-1]}
    growth=$(python3 -c "print('%.2f' % ($hi / max($lo, 1)))")
    echo
    echo "peak RSS of check, largest / smallest file: ${growth}x (flat means about 1)"
    # Flat: the largest file may not need more than 1.5x the smallest's memory.
    python3 -c "import sys; sys.exit(0 if $hi <= 1.5 * $lo else 1)" || { echo "MISSED: memory grows with the file" >&2; fail=1; }
fi
exit $fail
