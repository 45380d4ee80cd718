#!/usr/bin/env bash
# SFTP throughput of the gateway against OpenSSH, side by side.
#
# Starts, in a temporary folder and on free loopback ports:
#   - the gateway (`ppas-gateway serve` with its own configuration, a
#     provider imported and a login created with a fresh key);
#   - OpenSSH's sshd with internal-sftp (own host key, own authorized_keys,
#     own configuration given with -f, never the system one).
# Then moves a BENCH_SIZE_MIB file (default 128 MiB) up and down with the
# OpenSSH sftp client, with the default cipher and with aes128-gcm, best of
# BENCH_RUNS runs (default 3), and prints a table with the ratio
# gateway / OpenSSH (target: at most 1.25 in every case).
# Load case: BENCH_SESSIONS concurrent sessions (default 40) upload
# BENCH_FILES files in all (default 200); every file must arrive exactly
# once, complete, and no temporary file may remain. Then the same load
# under billing-file names, timed until the gateway has processed every
# upload: one report and one archived original per file, none twice.
#
# Usage: scripts/bench-sftp.sh
#   PPAS_GATEWAY_BIN   binary to run (default: `cargo build --release`, then
#                      target/release/ppas-gateway)
#   BENCH_SIZE_MIB, BENCH_RUNS, BENCH_SESSIONS, BENCH_FILES
# Needs: sftp, ssh-keygen, /usr/sbin/sshd, python3. When run as root, sshd
# needs its privilege-separation folder /run/sshd (created if missing).

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BIN=${PPAS_GATEWAY_BIN:-}
SIZE_MIB=${BENCH_SIZE_MIB:-128}
RUNS=${BENCH_RUNS:-3}
SESSIONS=${BENCH_SESSIONS:-40}
FILES=${BENCH_FILES:-200}
SSHD=${SSHD:-/usr/sbin/sshd}

if [ -z "${PPAS_GATEWAY_BIN:-}" ]; then
    (cd "$repo" && cargo build --release --quiet --bin ppas-gateway)
    BIN=${CARGO_TARGET_DIR:-$repo/target}/release/ppas-gateway
fi
[ -x "$BIN" ] || { echo "missing $BIN" >&2; exit 2; }
[ -x "$SSHD" ] || { echo "missing $SSHD" >&2; exit 2; }

work=$(mktemp -d /tmp/bench-sftp.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    local port=$1 i
    for i in $(seq 1 200); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "nothing listens on port $port" >&2
    return 1
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

ssh-keygen -q -N "" -t ed25519 -f "$work/id" -C bench
user=$(id -un)

# ---------------------------------------------------------------- gateway
gw_port=$(free_port)
gw="$work/gw"
mkdir -p "$gw"
cat > "$gw/config.toml" <<EOF
[paths]
spool = "$gw/spool"
database = "$gw/spool/state/gateway.db"

[sftp]
listen = "127.0.0.1:$gw_port"
host_key = "$gw/spool/state/ssh_host_ed25519_key"
max_sessions = 256
max_sessions_per_user = 64
max_unauthenticated_per_source = 64

[limits]
max_file_size = $(( (SIZE_MIB + 1) * 1024 * 1024 ))

[intake]
# The benchmark measures transfers only: the intake stays out of the way.
watch = false
rescan_secs = 86400
EOF
cat > "$gw/providers.csv" <<'EOF'
provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site
bench1;Bench SAAD;73282932000074;bench@example.org;01 02 03 04 05;saad;04;62739900;21999000
EOF
"$BIN" --config "$gw/config.toml" import providers "$gw/providers.csv" > "$work/gw-import.log" 2>&1 \
    || { cat "$work/gw-import.log" >&2; exit 2; }
"$BIN" --config "$gw/config.toml" user add --provider bench1 --login bench \
    --email bench@example.org --key "$work/id.pub" --admin > "$work/gw-user.log" 2>&1 \
    || { cat "$work/gw-user.log" >&2; exit 2; }
"$BIN" --config "$gw/config.toml" serve > "$work/gw-serve.log" 2>&1 &
pids+=($!)
wait_port "$gw_port" || { cat "$work/gw-serve.log" >&2; exit 2; }
mkdir -p "$gw/spool/outbound/bench1"

# ---------------------------------------------------------------- OpenSSH
ssh_port=$(free_port)
sd="$work/sshd"
mkdir -p "$sd/root"
ssh-keygen -q -N "" -t ed25519 -f "$sd/host_key"
cp "$work/id.pub" "$sd/authorized_keys"
cat > "$sd/sshd_config" <<EOF
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $sd/host_key
PidFile $sd/sshd.pid
AuthorizedKeysFile $sd/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
MaxStartups 200
MaxSessions 200
Subsystem sftp internal-sftp
ForceCommand internal-sftp -d $sd/root
EOF
if [ "$(id -u)" = 0 ] && [ ! -d /run/sshd ]; then mkdir -p -m 0755 /run/sshd; fi
"$SSHD" -D -e -f "$sd/sshd_config" > "$work/sshd.log" 2>&1 &
pids+=($!)
wait_port "$ssh_port" || { cat "$work/sshd.log" >&2; exit 2; }

# ---------------------------------------------------------------- data
head -c $(( SIZE_MIB * 1024 * 1024 )) /dev/urandom > "$work/data.bin"
cp "$work/data.bin" "$gw/spool/outbound/bench1/bench.dat"
cp "$work/data.bin" "$sd/root/bench.dat"
sum=$(sha256sum < "$work/data.bin" | cut -d' ' -f1)

sftp_run() { # port batch-file [sftp options...]
    local port=$1 batch=$2 login=$user
    [ "$port" = "$gw_port" ] && login=bench
    shift 2
    sftp -q -b "$batch" -i "$work/id" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR "$@" \
        -P "$port" "$login@127.0.0.1" > /dev/null 2>> "$work/sftp-errors.log"
}

# One timed transfer; checks what arrived.
transfer() { # target direction cipher
    local target=$1 dir=$2 cipher=$3 port remote_up remote_down arrived
    local opts=()
    [ "$cipher" = default ] || opts=(-c "$cipher")
    if [ "$target" = gateway ]; then
        port=$gw_port
        # A name the intake ignores: this measures the transfer only.
        remote_up=/in/bench-up.dat.part
        remote_down=/out/bench.dat
        arrived="$gw/spool/inbound/bench1/bench-up.dat.part"
    else
        port=$ssh_port
        remote_up=bench-up.dat
        remote_down=bench.dat
        arrived="$sd/root/bench-up.dat"
    fi
    rm -f "$work/down.bin" "$arrived"
    if [ "$dir" = up ]; then
        printf 'put %s %s\n' "$work/data.bin" "$remote_up" > "$work/batch"
    else
        printf 'get %s %s\n' "$remote_down" "$work/down.bin" > "$work/batch"
        arrived="$work/down.bin"
    fi
    local t0 t1
    t0=$(now)
    sftp_run "$port" "$work/batch" "${opts[@]}" || { echo "FAILED: $target $dir $cipher" >&2; return 1; }
    t1=$(now)
    [ "$(sha256sum < "$arrived" | cut -d' ' -f1)" = "$sum" ] \
        || { echo "CORRUPT: $target $dir $cipher" >&2; return 1; }
    elapsed "$t0" "$t1"
}

declare -A best
cases=("up default" "down default" "up aes128-gcm@openssh.com" "down aes128-gcm@openssh.com")
for run in $(seq 1 "$RUNS"); do
    for c in "${cases[@]}"; do
        set -- $c
        for target in gateway openssh; do
            t=$(transfer "$target" "$1" "$2")
            key="$target|$1|$2"
            if [ -z "${best[$key]:-}" ] || awk -v a="$t" -v b="${best[$key]}" 'BEGIN { exit !(a < b) }'; then
                best[$key]=$t
            fi
        done
    done
done

echo
echo "SFTP, ${SIZE_MIB} MiB, OpenSSH sftp client, best of $RUNS runs (seconds)"
printf '%-34s %10s %10s %8s %12s\n' "case" "gateway" "openssh" "ratio" "gateway MiB/s"
worst=0
for c in "${cases[@]}"; do
    set -- $c
    g=${best["gateway|$1|$2"]}
    o=${best["openssh|$1|$2"]}
    ratio=$(awk -v g="$g" -v o="$o" 'BEGIN { printf "%.2f", g / o }')
    rate=$(awk -v g="$g" -v s="$SIZE_MIB" 'BEGIN { printf "%.0f", s / g }')
    printf '%-34s %10s %10s %8s %12s\n' "$1 ($2)" "$g" "$o" "$ratio" "$rate"
    worst=$(awk -v a="$worst" -v b="$ratio" 'BEGIN { print (b > a ? b : a) }')
done

# ---------------------------------------------------------------- load
per=$(( (FILES + SESSIONS - 1) / SESSIONS ))
mkdir -p "$work/load"
n=0
for s in $(seq 1 "$SESSIONS"); do
    : > "$work/load/batch-$s"
    for i in $(seq 1 "$per"); do
        [ "$n" -lt "$FILES" ] || break
        n=$((n + 1))
        # .part: names the intake leaves alone, so that what arrived can be
        # checked where it landed.
        f="load-$s-$i.dat.part"
        head -c $(( 32768 + RANDOM * 8 )) /dev/urandom > "$work/load/$f"
        echo "put $work/load/$f /in/$f" >> "$work/load/batch-$s"
    done
done
(cd "$work/load" && sha256sum load-*.dat.part) | sort -k2 > "$work/load/expected"

load() { # target port: prints seconds, checks every file arrived once
    local target=$1 port=$2 t0 t1 s failed=0
    local lpids=()
    t0=$(now)
    for s in $(seq 1 "$SESSIONS"); do
        [ -s "$work/load/batch-$s" ] || continue
        if [ "$target" = gateway ]; then
            sftp_run "$port" "$work/load/batch-$s" &
        else
            sed 's| /in/| |' "$work/load/batch-$s" > "$work/load/obatch-$s"
            sftp_run "$port" "$work/load/obatch-$s" &
        fi
        lpids+=($!)
    done
    for p in "${lpids[@]}"; do wait "$p" || failed=$((failed + 1)); done
    t1=$(now)
    local root=$gw/spool
    [ "$target" = openssh ] && root=$sd/root
    # Every name exactly once under the root, with the right content, and no
    # temporary file left.
    find "$root" -name 'load-*.dat.part' -type f -exec sha256sum {} + \
        | awk '{ n = $2; sub(/.*\//, "", n); print $1 "  " n }' | sort -k2 > "$work/load/got-$target"
    local dupes temps content_ok=yes
    dupes=$(awk '{ print $2 }' "$work/load/got-$target" | uniq -d | wc -l)
    temps=$(find "$root" -name '.sftp-*' | wc -l)
    cmp -s "$work/load/got-$target" "$work/load/expected" || content_ok=no
    printf '%-10s %3d sessions %4d files %8ss  failed sessions: %d  duplicates: %d  temp files: %d  all complete and once: %s\n' \
        "$target" "$SESSIONS" "$n" "$(elapsed "$t0" "$t1")" "$failed" "$dupes" "$temps" "$content_ok"
    [ "$failed" = 0 ] && [ "$dupes" = 0 ] && [ "$temps" = 0 ] && [ "$content_ok" = yes ]
}

# The same load under billing-file names: the running gateway takes each
# upload as it is closed and processes it. Every file must be received
# once (one archived original with the uploaded content, one report, no
# second-occurrence report), with nothing left in inbound/ or work/.
load_processed() {
    local s t0 t1 failed=0 i
    local lpids=()
    for s in $(seq 1 "$SESSIONS"); do
        [ -s "$work/load/batch-$s" ] || continue
        sed 's|\.dat\.part$|.xml|' "$work/load/batch-$s" > "$work/load/xbatch-$s"
    done
    t0=$(now)
    for s in $(seq 1 "$SESSIONS"); do
        [ -s "$work/load/xbatch-$s" ] || continue
        sftp_run "$gw_port" "$work/load/xbatch-$s" &
        lpids+=($!)
    done
    for p in "${lpids[@]}"; do wait "$p" || failed=$((failed + 1)); done
    local reports=$gw/spool/outbound/bench1/reports
    for i in $(seq 1 600); do
        [ "$(find "$reports" -name 'load-*.report.xml' 2>/dev/null | wc -l)" -ge "$n" ] && break
        sleep 0.1
    done
    t1=$(now)
    # Archived originals are named <id>-<name>: strip the id, compare contents.
    find "$gw/spool/archive/bench1" -name '*-load-*.xml' -type f -exec sha256sum {} + \
        | awk '{ f = $2; sub(/.*\//, "", f); sub(/^[0-9]+-/, "", f); sub(/\.xml$/, ".dat.part", f); print $1 "  " f }' \
        | sort -k2 > "$work/load/got-processed"
    local nrep second left content_ok=yes
    nrep=$(find "$reports" -name 'load-*.report.xml' | wc -l)
    second=$(find "$reports" -name 'load-*.[0-9]*.report.*' | wc -l)
    left=$(find "$gw/spool/inbound/bench1" "$gw/spool/work" -name 'load-*.xml' 2>/dev/null | wc -l)
    cmp -s "$work/load/got-processed" "$work/load/expected" || content_ok=no
    printf '%-10s %3d sessions %4d files %8ss  failed sessions: %d  reports: %d  second reports: %d  left unprocessed: %d  archived once, intact: %s\n' \
        "processed" "$SESSIONS" "$n" "$(elapsed "$t0" "$t1")" "$failed" "$nrep" "$second" "$left" "$content_ok"
    [ "$failed" = 0 ] && [ "$nrep" = "$n" ] && [ "$second" = 0 ] && [ "$left" = 0 ] && [ "$content_ok" = yes ]
}

echo
echo "Load: $SESSIONS concurrent sessions, $n files in all"
load_ok=yes
load gateway "$gw_port" || load_ok=no
load openssh "$ssh_port" || true
echo "Same load under billing names, until every upload is processed (report written, original archived):"
load_processed || load_ok=no

echo
if awk -v w="$worst" 'BEGIN { exit !(w <= 1.25) }' && [ "$load_ok" = yes ]; then
    echo "OK: worst ratio $worst (target <= 1.25), load case complete"
else
    echo "NOT MET: worst ratio $worst (target <= 1.25), load case: $load_ok"
    exit 1
fi
