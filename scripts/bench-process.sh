#!/usr/bin/env bash
# Processing benchmark: `ppas-gateway process --once` on one valid billing
# file of N lines (default 100 000) whose lines all match the imported
# beneficiary plans, against `xmllint --noout --stream --schema` on the same
# file, side by side in the same run. Each process run starts from a fresh
# copy of the state taken right after the imports, so every run does the
# same work (every line accepted, recorded, written to the outbox).
#
# The data is shaped like a real file (scripts/gen_factbord.py --plans):
# beneficiaries with random valid-looking NIRs and distinct names, billed
# for 1 to 8 months each (MAX_MONTHS), the file sorted by month then by
# name, so NIRs arrive in an order unrelated to the file's; their plans
# (PPP100, PPP119) imported in yet another order.
#
# Usage: scripts/bench-process.sh [N] [RUNS]
#   N     lines of the billing file (default 100000)
#   RUNS  runs of each command, alternated; the median is reported (default 5)
# Environment:
#   DATA=consecutive  the same population with NIRs numbered in file order
#                     and plans imported in that order (every index insert
#                     an append: the shape of earlier benchmarks), to compare
#   MAX_MONTHS=K      months billed per beneficiary, at most (1 to 10,
#                     default 8); 1 gives one line per beneficiary: as many
#                     beneficiaries as lines, and more plans
#   BASELINE=PATH     another ppas-gateway binary, timed in the same runs
#                     (alternated with the others) for a before/after
#   KEEP=1            keep the work folder (printed)
#   CARGO_TARGET_DIR  honoured
#
# Targets: process ≤ 1.5 × xmllint (wall time), peak RSS of process ≤ 64 MB;
# exits 1 when one is missed.

set -euo pipefail

N=${1:-100000}
RUNS=${2:-5}
DATA=${DATA:-scattered}
MAX_MONTHS=${MAX_MONTHS:-8}
BASELINE=${BASELINE:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
bin=$target/release/ppas-gateway
xsd=$repo/schema/FactficTrans.xsd

for tool in xmllint /usr/bin/time python3; do
    command -v "$tool" >/dev/null || { echo "bench-process: $tool is required" >&2; exit 2; }
done
case $DATA in scattered | consecutive) ;; *) echo "bench-process: DATA is scattered or consecutive" >&2; exit 2 ;; esac
if [[ -n "$BASELINE" ]]; then
    BASELINE=$(realpath "$BASELINE")
    [[ -x "$BASELINE" ]] || { echo "bench-process: $BASELINE is not executable" >&2; exit 2; }
fi

echo "== building (release)" >&2
(cd "$repo" && cargo build --release --quiet --bin ppas-gateway)

work=$(mktemp -d "${TMPDIR:-/tmp}/ppas-bench.XXXXXX")
if [[ "${KEEP:-0}" != 1 ]]; then trap 'rm -rf "$work"' EXIT; else echo "== work folder: $work" >&2; fi
cd "$work"

site=21000001
name="03_011126_100_${site}.xml"
export PPAS_GATEWAY_NOW=2026-11-20T10:00:00+01:00

echo "== generating a $N-line billing file ($DATA NIRs) and its beneficiaries' plans" >&2
printf '%s\n' "provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site" \
    "saadbench;SAAD Banc d'essai;73282932000074;bench@saad.example;03 80 00 00 00;saad;03;$site;$site" \
    >providers.csv
python3 "$repo/scripts/gen_factbord.py" "$N" --out . --date 011126 --id-site "$site" \
    --plans beneficiaries.csv --nirs "$DATA" --max-months "$MAX_MONTHS" >/dev/null
[[ -f "$name" ]] || { echo "bench-process: the generator did not write $name" >&2; exit 2; }
plans=$(($(wc -l <beneficiaries.csv) - 1))
people=$(grep -o '<nir-per>[^<]*' "$name" | sort -u | wc -l)

cat > gateway.toml <<EOF
[paths]
spool = "$work/spool"
database = "$work/spool/state/gateway.db"

[sftp]
enabled = false
EOF

echo "== importing reference data" >&2
ms() { echo $(( $(date +%s%N) / 1000000 )); }
# The state after the imports, made by binary $1 in folder $2 (each binary
# its own: a newer schema is refused by an older binary).
import_state() {
    rm -rf spool
    "$1" --config gateway.toml import providers providers.csv >/dev/null 2>imports.log
    "$1" --config gateway.toml import beneficiaries beneficiaries.csv >/dev/null 2>>imports.log
    cp -a spool/state "$2"
}
t0=$(ms)
import_state "$bin" state0
import_ms=$(( $(ms) - t0 ))
[[ -z "$BASELINE" ]] || import_state "$BASELINE" state0-baseline

# One timed run of a command: prints "<wall ms> <peak RSS kB> <CPU ms>"
# (CPU = user + system: what the run costs whatever the other load).
timed() {
    local t0 t1
    t0=$(ms)
    /usr/bin/time -f '%M %U %S' -o rss.txt "$@" >/dev/null 2>run.log || { echo "bench-process: $* failed:" >&2; tail -5 run.log >&2; exit 2; }
    t1=$(ms)
    echo "$(( t1 - t0 )) $(tail -1 rss.txt | awk '{ printf "%d %d", $1, ($2 + $3) * 1000 }')"
}

# A fresh spool for one `process --once`: the state after the imports
# (folder $1, default state0) and the file waiting in the inbound folder.
fresh_spool() {
    rm -rf spool && mkdir -p "spool/inbound/saadbench" && cp -a "${1:-state0}" spool/state
    cp "$name" "spool/inbound/saadbench/$name"
}
# After a `process --once`: every line reached the outbox.
check_outbox() {
    local lines
    lines=$(grep -c '<factprest>' "spool/outbox/03/$name")
    [[ "$lines" == "$N" ]] || { echo "bench-process: outbox has $lines lines, expected $N" >&2; exit 2; }
}

proc_ms=(); proc_rss=(); proc_cpu=(); lint_ms=(); lint_rss=(); lint_cpu=(); base_ms=(); base_rss=(); base_cpu=()
for ((r = 1; r <= RUNS; r++)); do
    fresh_spool
    read -r t m c < <(timed "$bin" --config gateway.toml process --once)
    check_outbox
    proc_ms+=("$t"); proc_rss+=("$m"); proc_cpu+=("$c")
    read -r t m c < <(timed xmllint --noout --stream --schema "$xsd" "$name")
    lint_ms+=("$t"); lint_rss+=("$m"); lint_cpu+=("$c")
    line="   run $r: process ${proc_ms[-1]} ms (CPU ${proc_cpu[-1]} ms, ${proc_rss[-1]} kB), xmllint ${lint_ms[-1]} ms (CPU ${lint_cpu[-1]} ms, ${lint_rss[-1]} kB)"
    if [[ -n "$BASELINE" ]]; then
        fresh_spool state0-baseline
        read -r t m c < <(timed "$BASELINE" --config gateway.toml process --once)
        check_outbox
        base_ms+=("$t"); base_rss+=("$m"); base_cpu+=("$c")
        line+=", baseline ${base_ms[-1]} ms (CPU ${base_cpu[-1]} ms, ${base_rss[-1]} kB)"
    fi
    echo "$line" >&2
done

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
max() { printf '%s\n' "$@" | sort -n | tail -1; }
pm=$(median "${proc_ms[@]}"); lm=$(median "${lint_ms[@]}")
pc=$(median "${proc_cpu[@]}"); lc=$(median "${lint_cpu[@]}")
prss=$(max "${proc_rss[@]}"); lrss=$(max "${lint_rss[@]}")
size=$(stat -c %s "$name")
ratio=$(awk -v a="$pm" -v b="$lm" 'BEGIN { printf "%.2f", a / b }')
cpu_ratio=$(awk -v a="$pc" -v b="$lc" 'BEGIN { printf "%.2f", a / b }')
verdict_t=$(awk -v r="$ratio" 'BEGIN { print (r <= 1.5) ? "met" : "MISSED" }')
verdict_m=$(awk -v k="$prss" 'BEGIN { print (k <= 65536) ? "met" : "MISSED" }')

cat <<EOF

Billing file: $N lines, $(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB, $people beneficiaries ($DATA NIRs, distinct names);
imports of $plans plans took $import_ms ms.
Median of $RUNS runs (wall time; CPU = user + system), peak RSS the largest seen:

| command | wall time | CPU time | peak RSS | ratio to xmllint (wall / CPU) |
|---|---|---|---|---|
| \`ppas-gateway process --once\` | $pm ms | $pc ms | $(( prss / 1024 )) MB | $ratio / $cpu_ratio |
EOF
if [[ -n "$BASELINE" ]]; then
    bm=$(median "${base_ms[@]}"); bc=$(median "${base_cpu[@]}"); brss=$(max "${base_rss[@]}")
    echo "| baseline \`process --once\` | $bm ms | $bc ms | $(( brss / 1024 )) MB | $(awk -v a="$bm" -v b="$lm" 'BEGIN { printf "%.2f", a / b }') / $(awk -v a="$bc" -v b="$lc" 'BEGIN { printf "%.2f", a / b }') |"
fi
cat <<EOF
| \`xmllint --noout --stream --schema FactficTrans.xsd\` | $lm ms | $lc ms | $(( lrss / 1024 )) MB | 1 |

ratio process / xmllint: $ratio wall, $cpu_ratio CPU (target ≤ 1.5: $verdict_t); peak RSS of process: $(( prss / 1024 )) MB (target ≤ 64 MB: $verdict_m)
EOF
[[ "$verdict_t" == met && "$verdict_m" == met ]] || exit 1
