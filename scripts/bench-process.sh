#!/usr/bin/env bash
# Processing benchmark: `ppas-gateway process --once` on one valid billing
# file of N lines (default 100 000) whose lines all match N imported
# beneficiary plans, against `xmllint --noout --stream --schema` on the same
# file. Each process run starts from a fresh copy of the state taken right
# after the imports, so every run does the same work (every line accepted,
# recorded, written to the outbox).
#
# Usage: scripts/bench-process.sh [N] [RUNS]
#   N     lines of the billing file and beneficiary plans (default 100000)
#   RUNS  runs of each command, alternated; the median is reported (default 5)
# Environment: CARGO_TARGET_DIR is honoured; KEEP=1 keeps the work folder.
#
# Targets: process ≤ 1.5 × xmllint (wall time), peak RSS of process ≤ 64 MB;
# exits 1 when one is missed.

set -euo pipefail

N=${1:-100000}
RUNS=${2:-5}
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
bin=$target/release/ppas-gateway
xsd=$repo/schema/FactficTrans.xsd

for tool in xmllint /usr/bin/time python3; do
    command -v "$tool" >/dev/null || { echo "bench-process: $tool is required" >&2; exit 2; }
done

echo "== building (release)" >&2
(cd "$repo" && cargo build --release --quiet --bin ppas-gateway)

work=$(mktemp -d "${TMPDIR:-/tmp}/ppas-bench.XXXXXX")
if [[ "${KEEP:-0}" != 1 ]]; then trap 'rm -rf "$work"' EXIT; fi
cd "$work"

site=21000001
name="03_011126_100_${site}.xml"
export PPAS_GATEWAY_NOW=2026-11-20T10:00:00+01:00

echo "== generating $N plans and a $N-line billing file in $work" >&2
python3 - "$N" "$site" "$name" <<'PY'
import sys
n, site, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open("providers.csv", "w", encoding="utf-8") as f:
    f.write("provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site\n")
    f.write(f"saadbench;SAAD Banc d'essai;73282932000074;bench@saad.example;03 80 00 00 00;saad;03;{site};{site}\n")
hours = []
with open("beneficiaries.csv", "w", encoding="utf-8") as f:
    f.write("id-cram;id-site;nir-per;nom-per;pn-per;rf-prstpap;dt-debut;dt-fin;mt-total;mt-consomme\n")
    for i in range(n):
        f.write(f"03;{site};{1000000000000 + i};NOM{i};Prenom{i % 97};PPP100;2026-01-01;2026-12-31;120;0\n")
stem = name[:-4]
total = 0
with open(name, "w", encoding="utf-8") as f:
    w = f.write
    w('<?xml version="1.0" encoding="UTF-8"?>\n<factbord>\n')
    w(f" <rf-borfact>{stem}</rf-borfact>\n <log-fact>banc 1.0</log-fact>\n <id-cram>03</id-cram>\n")
    w(f" <id-site>{site}</id-site>\n <rf-prstpap>PPP100</rf-prstpap>\n")
    for i in range(n):
        q = 1 + (i % 2900) / 100          # 1.00 .. 29.99 hours, in hundredths
        total += round(q * 100)
        w(" <factprest>\n")
        w(f"  <nir-per>{1000000000000 + i}</nir-per>\n  <nom-per>NOM{i}</nom-per>\n  <pn-per>Prenom{i % 97}</pn-per>\n")
        w(f"  <rf-prstpap>PPP100</rf-prstpap>\n  <id-prest>{site}</id-prest>\n")
        w("  <dtd-interv>2026-10-01</dtd-interv>\n  <dtf-interv>2026-10-31</dtf-interv>\n")
        w(f"  <nb-quant>{q:.2f}</nb-quant>\n  <mt-tu>1</mt-tu>\n  <mt-total>0</mt-total>\n  <bo-regul>F</bo-regul>\n")
        w(" </factprest>\n")
    w(f" <nb-ligbor>{n}</nb-ligbor>\n <mt-totamd>{total // 100}.{total % 100:02d}</mt-totamd>\n <mt-totprest>0</mt-totprest>\n</factbord>\n")
PY

cat > gateway.toml <<EOF
[paths]
spool = "$work/spool"
database = "$work/spool/state/gateway.db"

[sftp]
enabled = false
EOF

echo "== importing reference data" >&2
ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms)
"$bin" --config gateway.toml import providers providers.csv >/dev/null 2>imports.log
"$bin" --config gateway.toml import beneficiaries beneficiaries.csv >/dev/null 2>>imports.log
import_ms=$(( $(ms) - t0 ))
cp -a spool/state state0

# One timed run of a command: prints "<wall ms> <peak RSS kB> <CPU ms>"
# (CPU = user + system: what the run costs whatever the other load).
timed() {
    local t0 t1
    t0=$(ms)
    /usr/bin/time -f '%M %U %S' -o rss.txt "$@" >/dev/null 2>run.log || { echo "bench-process: $* failed:" >&2; tail -5 run.log >&2; exit 2; }
    t1=$(ms)
    echo "$(( t1 - t0 )) $(tail -1 rss.txt | awk '{ printf "%d %d", $1, ($2 + $3) * 1000 }')"
}

proc_ms=(); proc_rss=(); proc_cpu=(); lint_ms=(); lint_rss=(); lint_cpu=()
for ((r = 1; r <= RUNS; r++)); do
    rm -rf spool && mkdir -p "spool/inbound/saadbench" && cp -a state0 spool/state
    cp "$name" "spool/inbound/saadbench/$name"
    read -r t m c < <(timed "$bin" --config gateway.toml process --once)
    lines=$(grep -c '<factprest>' "spool/outbox/03/$name")
    [[ "$lines" == "$N" ]] || { echo "bench-process: outbox has $lines lines, expected $N" >&2; exit 2; }
    proc_ms+=("$t"); proc_rss+=("$m"); proc_cpu+=("$c")
    read -r t m c < <(timed xmllint --noout --stream --schema "$xsd" "$name")
    lint_ms+=("$t"); lint_rss+=("$m"); lint_cpu+=("$c")
    echo "   run $r: process ${proc_ms[-1]} ms (CPU ${proc_cpu[-1]} ms, ${proc_rss[-1]} kB), xmllint ${lint_ms[-1]} ms (CPU ${lint_cpu[-1]} ms, ${lint_rss[-1]} kB)" >&2
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

Billing file: $N lines, $(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB; imports of $N plans took $import_ms ms.
Median of $RUNS runs (wall time; CPU = user + system), peak RSS the largest seen:

| command | wall time | CPU time | peak RSS |
|---|---|---|---|
| \`ppas-gateway process --once\` | $pm ms | $pc ms | $(( prss / 1024 )) MB |
| \`xmllint --noout --stream --schema FactficTrans.xsd\` | $lm ms | $lc ms | $(( lrss / 1024 )) MB |

ratio process / xmllint: $ratio wall, $cpu_ratio CPU (target ≤ 1.5: $verdict_t); peak RSS of process: $(( prss / 1024 )) MB (target ≤ 64 MB: $verdict_m)
EOF
[[ "$verdict_t" == met && "$verdict_m" == met ]] || exit 1
