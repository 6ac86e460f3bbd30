#!/usr/bin/env bash
# Compares wsclose's speed and memory with the floor (read + decode only) and tshark,
# and checks that time grows linearly with the capture size while memory stays flat.
set -euo pipefail
export LC_ALL=C
[ -n "${EPOCHREALTIME:-}" ] || { echo "compare.sh: needs bash >= 5" >&2; exit 2; }

usage() {
    cat <<'EOF'
usage: scripts/compare.sh [--no-build] CAPTURE [CAPTURE...]
       scripts/compare.sh [--no-build] --scale [GENCAP-ARGS...]
       scripts/compare.sh [--no-build] --tls [GENCAP-ARGS...]

Mode 1 (captures): for each CAPTURE, times RUNS runs of
  wsclose sessions -q CAPTURE -o /dev/null --threads T   (T in THREADS)
  examples/floor --threads T CAPTURE                     (read + decode only)
  tshark -r CAPTURE -o tcp.reassemble_out_of_order:TRUE -Y websocket -T fields -e frame.number
                                                         (if installed and CAPTURE <= TSHARK_MAX_MB)
and prints the median wall time, MB/s (input bytes / wall, 1 MB = 10^6 bytes), packets/s,
median peak RSS, then the ratios wsclose/floor and threads1/threadsN.

Mode 2 (--scale): generates a 1x and a FACTORx capture with examples/gencap into a temporary
directory outside the repository (GENCAP-ARGS are gencap's flags; default
"--seed 7 --mix chat --bytes 500M"; the FACTORx capture has FACTOR times --bytes), runs
wsclose on both and prints the time ratio and the peak RSS of each. Target: FACTOR x data
=> <= FACTOR*1.05 x time, same RSS. The temporary files are removed at the end.

Mode 3 (--tls): generates the same sessions as plaintext and as wss:// (gencap --tls: TLS 1.3,
TLS_AES_128_GCM_SHA256, with its key log) into a temporary directory (default GENCAP-ARGS
"--seed 7 --mix chat --bytes 300M"), runs wsclose on both (the TLS one with --keylog) and
prints the time ratio TLS/plaintext and the peak RSS of each. Target: <= 2x the time,
RSS <= 64 MiB.

In mode 1, a CAPTURE with a key log beside it (NAME.keys) is read with --keylog NAME.keys.

Options:
  --no-build   use the existing target/release binaries (default: cargo build --release first)
  -h, --help   this text

Environment:
  RUNS=3              runs per measurement (the median is reported)
  THREADS="1 2"       thread counts for wsclose and the floor
  TSHARK_MAX_MB=300   largest capture given to tshark (0 = never run tshark)
  FACTOR=10           --scale: size factor of the big capture
  SCALE_DIR=${TMPDIR:-/tmp}  --scale: where the temporary directory is made
  JOBS=2              cargo build jobs
  FEATURES=           cargo features of the build (e.g. FEATURES=ring: the ring AEAD backend)
  CARGO_TARGET_DIR    as for cargo (default target/)
EOF
}

die() {
    echo "compare.sh: $*" >&2
    exit 2
}

RUNS=${RUNS:-3}
THREADS=${THREADS:-"1 2"}
TSHARK_MAX_MB=${TSHARK_MAX_MB:-300}
FACTOR=${FACTOR:-10}
JOBS=${JOBS:-2}
FEATURES=${FEATURES:-}
BUILD=1
SCALE=0
TLS=0

case "$RUNS" in '' | *[!0-9]* | 0) die "RUNS must be a positive integer" ;; esac
case "$TSHARK_MAX_MB" in '' | *[!0-9]*) die "TSHARK_MAX_MB must be an integer (MB)" ;; esac
case "$FACTOR" in '' | *[!0-9]* | 0) die "FACTOR must be a positive integer" ;; esac

args=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --no-build) BUILD=0 ;;
        --scale) SCALE=1 ;;
        --tls) TLS=1 ;;
        *) args+=("$1") ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WSCLOSE=$TARGET/release/wsclose
FLOOR=$TARGET/release/examples/floor
GENCAP=$TARGET/release/examples/gencap
TIME=/usr/bin/time
[ -x "$TIME" ] || die "$TIME (GNU time) is needed for wall time and peak RSS: apt-get install time"

if [ "$SCALE" = 0 ] && [ "$TLS" = 0 ] && [ ${#args[@]} -eq 0 ]; then
    usage >&2
    exit 2
fi

if [ "$BUILD" = 1 ]; then
    feat=()
    [ -z "$FEATURES" ] || feat=(--features "$FEATURES")
    echo "building (cargo build --release -j $JOBS ${feat[*]} --bin wsclose --example floor --example gencap)..." >&2
    (cd "$ROOT" && cargo build --release -j "$JOBS" --quiet "${feat[@]}" --bin wsclose --example floor --example gencap) ||
        die "build failed"
fi
for b in "$WSCLOSE" "$FLOOR"; do
    [ -x "$b" ] || die "$b not found (build it, or drop --no-build)"
done

WORK=$(mktemp -d "${SCALE_DIR:-${TMPDIR:-/tmp}}/wsclose-compare.XXXXXX")
cleanup() { rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# median of the numbers on stdin
median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# measure LABEL CMD...: runs CMD RUNS times; sets M_WALL (median s), M_RSS (median KiB), M_OK
measure() {
    local label=$1 i rc t0 t1 w m walls="" rsss=""
    shift
    M_OK=1
    for i in $(seq "$RUNS"); do
        rc=0
        t0=$EPOCHREALTIME
        "$TIME" -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/stderr" || rc=$?
        t1=$EPOCHREALTIME
        if [ "$rc" != 0 ]; then
            echo "compare.sh: $label: exit status $rc; stderr:" >&2
            grep -v '^Command exited' "$WORK/stderr" | tail -n 5 >&2 || true
            M_OK=0
        fi
        # GNU time appends its line to the -o file last.
        # Wall time from bash's microsecond clock (GNU time's %e has 10 ms steps).
        read -r _ m < <(tail -n 1 "$WORK/time")
        w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        walls+="$w"$'\n'
        rsss+="$m"$'\n'
        printf '  %-22s run %d/%d: %7.3f s  %8.1f MiB\n' "$label" "$i" "$RUNS" "$w" "$(awk -v m="$m" 'BEGIN { print m / 1024 }')" >&2
    done
    M_WALL=$(printf '%s' "$walls" | median)
    M_RSS=$(printf '%s' "$rsss" | median)
}

file_bytes() { stat -c %s -- "$1"; }

# packet count: capinfos, else wsclose's summary line ("read N packets")
packet_count() {
    local n=""
    if command -v capinfos >/dev/null 2>&1; then
        n=$(capinfos -c -M -- "$1" 2>/dev/null | awk -F: '/Number of packets/ { gsub(/ /, "", $2); print $2 }')
    fi
    if [ -z "$n" ]; then
        n=$("$WSCLOSE" sessions "$1" -o /dev/null 2>&1 >/dev/null | sed -n 's/.*read \([0-9][0-9]*\) packets.*/\1/p' | head -n 1)
    fi
    echo "${n:-0}"
}

ROWS=()
# row CAPTURE PROGRAM BYTES PACKETS
row() {
    local ok=""
    [ "$M_OK" = 1 ] || ok=" (FAILED)"
    ROWS+=("$(awk -v c="$1" -v p="$2$ok" -v b="$3" -v n="$4" -v w="$M_WALL" -v m="$M_RSS" 'BEGIN {
        mbs = (w > 0) ? b / 1e6 / w : 0; pps = (w > 0) ? n / w : 0
        printf "%-24s %-22s %9.3f %9.1f %10.1f %10.1f", c, p, w, mbs, pps / 1e3, m / 1024 }')")
}

print_table() {
    printf '\n%-24s %-22s %9s %9s %10s %10s\n' capture program "wall_s" "MB/s" "kpkt/s" "rss_MiB"
    printf '%s\n' "${ROWS[@]}"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }

run_captures() {
    local cap name bytes packets mb t
    local -A W
    local RATIOS=()
    for cap in "$@"; do
        [ -r "$cap" ] || die "$cap: cannot read"
    done
    for cap in "$@"; do
        name=$(basename -- "$cap")
        bytes=$(file_bytes "$cap")
        mb=$((bytes / 1000000))
        echo "== $name ($mb MB): warming the page cache, counting packets" >&2
        cat -- "$cap" >/dev/null
        packets=$(packet_count "$cap")
        local keys=()
        if [ -r "${cap%.*}.keys" ]; then
            keys=(--keylog "${cap%.*}.keys")
            echo "  key log: ${cap%.*}.keys" >&2
        fi
        for t in $THREADS; do
            measure "wsclose --threads $t" "$WSCLOSE" sessions -q "${keys[@]}" "$cap" -o /dev/null --threads "$t"
            row "$name" "wsclose --threads $t" "$bytes" "$packets"
            W["ws$t"]=$M_WALL
        done
        for t in $THREADS; do
            measure "floor --threads $t" "$FLOOR" --threads "$t" "$cap"
            row "$name" "floor --threads $t" "$bytes" "$packets"
            W["fl$t"]=$M_WALL
        done
        if ! command -v tshark >/dev/null 2>&1; then
            echo "  tshark: not installed, skipped" >&2
        elif [ "$bytes" -gt $((TSHARK_MAX_MB * 1000000)) ]; then
            echo "  tshark: $mb MB > TSHARK_MAX_MB=$TSHARK_MAX_MB, skipped" >&2
        else
            measure "tshark" tshark -r "$cap" -o tcp.reassemble_out_of_order:TRUE -Y websocket -T fields -e frame.number
            row "$name" "tshark" "$bytes" "$packets"
            W[tshark]=$M_WALL
        fi
        local first="" last=""
        for t in $THREADS; do
            RATIOS+=("$(printf '%-24s wsclose/floor at %s thread(s): %s' "$name" "$t" "$(ratio "${W[ws$t]}" "${W[fl$t]}")")")
            [ -n "$first" ] || first=$t
            last=$t
        done
        if [ "$first" != "$last" ]; then
            RATIOS+=("$(printf '%-24s wsclose threads%s/threads%s: %s   floor threads%s/threads%s: %s' "$name" \
                "$first" "$last" "$(ratio "${W[ws$first]}" "${W[ws$last]}")" \
                "$first" "$last" "$(ratio "${W[fl$first]}" "${W[fl$last]}")")")
        fi
        if [ -n "${W[tshark]:-}" ]; then
            RATIOS+=("$(printf '%-24s tshark/wsclose(threads%s): %s' "$name" "$last" "$(ratio "${W[tshark]}" "${W[ws$last]}")")")
            unset 'W[tshark]'
        fi
    done
    print_table
    echo
    echo "ratios of median wall times (time ratio; < 1 means the first is faster):"
    printf '%s\n' "${RATIOS[@]}"
    echo "($RUNS runs each; $(nproc) cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
}

run_scale() {
    local spec=("$@") big=() bytes_arg="" i t small_b big_b small_p big_p
    [ -x "$GENCAP" ] || die "$GENCAP not found (build it, or drop --no-build)"
    [ ${#spec[@]} -gt 0 ] || spec=(--seed 7 --mix chat --bytes 500M)
    # The big capture: the same spec with --bytes multiplied by FACTOR.
    for ((i = 0; i < ${#spec[@]}; i++)); do
        case "${spec[$i]}" in
            -o | --output | --expected) die "--scale: do not pass ${spec[$i]}; the files are temporary" ;;
            --bytes)
                bytes_arg=${spec[$((i + 1))]:-}
                big+=(--bytes "$(awk -v s="$bytes_arg" -v f="$FACTOR" 'BEGIN {
                    u = substr(s, length(s)); n = s + 0
                    if (u ~ /[kKmMgGtT]/) printf "%.6g%s", n * f, u; else printf "%.0f", n * f }')")
                i=$((i + 1))
                ;;
            *) big+=("${spec[$i]}") ;;
        esac
    done
    [ -n "$bytes_arg" ] || die "--scale: the generator spec needs --bytes SIZE"
    echo "== scale: generating 1x (${spec[*]}) and ${FACTOR}x (${big[*]}) in $WORK" >&2
    "$GENCAP" "${spec[@]}" -o "$WORK/x1.pcap"
    "$GENCAP" "${big[@]}" -o "$WORK/x$FACTOR.pcap"
    small_b=$(file_bytes "$WORK/x1.pcap")
    big_b=$(file_bytes "$WORK/x$FACTOR.pcap")
    cat "$WORK/x1.pcap" "$WORK/x$FACTOR.pcap" >/dev/null
    small_p=$(packet_count "$WORK/x1.pcap")
    big_p=$(packet_count "$WORK/x$FACTOR.pcap")
    local -A W R
    for t in $THREADS; do
        measure "x1 --threads $t" "$WSCLOSE" sessions -q "$WORK/x1.pcap" -o /dev/null --threads "$t"
        row "x1.pcap" "wsclose --threads $t" "$small_b" "$small_p"
        W["1_$t"]=$M_WALL R["1_$t"]=$M_RSS
        measure "x$FACTOR --threads $t" "$WSCLOSE" sessions -q "$WORK/x$FACTOR.pcap" -o /dev/null --threads "$t"
        row "x$FACTOR.pcap" "wsclose --threads $t" "$big_b" "$big_p"
        W["big_$t"]=$M_WALL R["big_$t"]=$M_RSS
    done
    print_table
    echo
    echo "size ratio: $(ratio "$big_b" "$small_b") (target: time ratio <= $(awk -v f="$FACTOR" 'BEGIN { print f * 1.05 }'), RSS unchanged)"
    for t in $THREADS; do
        local tr rr verdict
        tr=$(ratio "${W[big_$t]}" "${W[1_$t]}")
        rr=$(ratio "${R[big_$t]}" "${R[1_$t]}")
        verdict=$(awk -v r="$tr" -v f="$FACTOR" -v s="$(ratio "$big_b" "$small_b")" 'BEGIN {
            print (r <= f * 1.05) ? "ok" : "SLOWER THAN LINEAR" }')
        printf 'threads %s: time %ss -> %ss, ratio %s (%s); peak RSS %.1f -> %.1f MiB, ratio %s\n' "$t" \
            "${W[1_$t]}" "${W[big_$t]}" "$tr" "$verdict" \
            "$(awk -v m="${R[1_$t]}" 'BEGIN { print m / 1024 }')" "$(awk -v m="${R[big_$t]}" 'BEGIN { print m / 1024 }')" "$rr"
    done
    echo "($RUNS runs each; $(nproc) cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
}

run_tls() {
    local spec=("$@") t i pb tb pp tp
    [ -x "$GENCAP" ] || die "$GENCAP not found (build it, or drop --no-build)"
    [ ${#spec[@]} -gt 0 ] || spec=(--seed 7 --mix chat --bytes 300M)
    for ((i = 0; i < ${#spec[@]}; i++)); do
        case "${spec[$i]}" in
            -o | --output | --expected | --tls | --keylog) die "--tls: do not pass ${spec[$i]}" ;;
        esac
    done
    echo "== tls: generating plaintext and wss:// (${spec[*]}) in $WORK" >&2
    "$GENCAP" "${spec[@]}" -o "$WORK/plain.pcap"
    "$GENCAP" "${spec[@]}" --tls -o "$WORK/tls.pcap" --keylog "$WORK/tls.keys"
    pb=$(file_bytes "$WORK/plain.pcap")
    tb=$(file_bytes "$WORK/tls.pcap")
    cat "$WORK/plain.pcap" "$WORK/tls.pcap" >/dev/null
    pp=$(packet_count "$WORK/plain.pcap")
    tp=$("$WSCLOSE" sessions --keylog "$WORK/tls.keys" "$WORK/tls.pcap" -o /dev/null 2>&1 >/dev/null |
        sed -n 's/.*read \([0-9][0-9]*\) packets.*/\1/p' | head -n 1)
    "$WSCLOSE" sessions --keylog "$WORK/tls.keys" "$WORK/tls.pcap" -o /dev/null 2>&1 | sed 's/^/  /' >&2
    local -A W R
    for t in $THREADS; do
        # Interleaved: plaintext, then TLS, per thread count.
        measure "plain --threads $t" "$WSCLOSE" sessions -q "$WORK/plain.pcap" -o /dev/null --threads "$t"
        row "plain.pcap" "wsclose --threads $t" "$pb" "$pp"
        W["p_$t"]=$M_WALL R["p_$t"]=$M_RSS
        measure "tls --threads $t" "$WSCLOSE" sessions -q --keylog "$WORK/tls.keys" "$WORK/tls.pcap" -o /dev/null --threads "$t"
        row "tls.pcap" "wsclose --threads $t" "$tb" "${tp:-0}"
        W["t_$t"]=$M_WALL R["t_$t"]=$M_RSS
    done
    print_table
    echo
    echo "TLS capture / plaintext capture: $(ratio "$tb" "$pb") x the bytes (target: time ratio <= 2, RSS <= 64 MiB)"
    for t in $THREADS; do
        local tr verdict
        tr=$(ratio "${W[t_$t]}" "${W[p_$t]}")
        verdict=$(awk -v r="$tr" -v m="${R[t_$t]}" 'BEGIN {
            print (r <= 2 && m <= 64 * 1024) ? "ok" : "OVER TARGET" }')
        printf 'threads %s: time %ss -> %ss, ratio %s; peak RSS %.1f -> %.1f MiB (%s)\n' "$t" \
            "${W[p_$t]}" "${W[t_$t]}" "$tr" \
            "$(awk -v m="${R[p_$t]}" 'BEGIN { print m / 1024 }')" "$(awk -v m="${R[t_$t]}" 'BEGIN { print m / 1024 }')" "$verdict"
    done
    echo "($RUNS runs each; $(nproc) cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
}

if [ "$TLS" = 1 ]; then
    run_tls ${args[@]+"${args[@]}"}
elif [ "$SCALE" = 1 ]; then
    run_scale ${args[@]+"${args[@]}"}
else
    run_captures "${args[@]}"
fi
