#!/bin/sh
# device_check.sh - the AMX checks, prepared for a session that is lent the device machine
# (its host CPU is a Xeon with AMX, which the development VMs do not show; docs/ARCHITECTURE.md,
# "AMX tiles").  That machine has no Debian packages and no network, so the binaries built
# here travel with the shared libraries they load.
#
#   tools/device_check.sh pack     here: .devlib/libs.tar.xz (ignored by git; about 9 MB)
#   then the device tool's run, after `make all tests`, carrying .devlib, flamingo,
#   build/tests/test_amx and build/tests/test_wmat:
#       sh tools/device_check.sh run
#
# `run` prints what the CPU has, runs test_amx and test_wmat (the real AMX kernel against the
# double loop and the emulation), then on 2 CPUs each, all at once: flamingo's 3B bench in
# bf16 and q8_0 with the amx table and with avx512bf16 (the same build without AMX), the gemm
# bench in bf16 and q8_0 both ways (1 to 64 rows: where the tiles start to win), and the
# PyTorch peer (that machine's PyTorch) in bf16 and f32.
# Results go to $OUT (the device tool's folder) and to stdout; about 5 minutes.
set -u
case "${1:-}" in
pack)
    mkdir -p .devlib /tmp/devlibs.$$
    grep -qx '/.devlib/' .git/info/exclude 2>/dev/null || echo /.devlib/ >>.git/info/exclude
    for l in $(ldd ./flamingo build/tests/test_amx | awk '/=>/ {print $3}' | sort -u); do
        case "$(basename "$l")" in libc.so.* | libm.so.* | ld-linux*) ;; *) cp -L "$l" /tmp/devlibs.$$/ ;; esac
    done
    tar -C /tmp/devlibs.$$ -cJf .devlib/libs.tar.xz . && rm -rf /tmp/devlibs.$$
    ls -la .devlib
    ;;
run)
    OUT=${OUT:-/tmp/out}
    mkdir -p /tmp/dl "$OUT" && tar -C /tmp/dl -xJf .devlib/libs.tar.xz
    export LD_LIBRARY_PATH=/tmp/dl PYTHONUNBUFFERED=1
    grep -m1 -o -w 'amx_[a-z0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' '
    nproc
    ./flamingo --version
    FLAMINGO_KERNELS=avx512bf16 ./flamingo --version | head -2 | tail -1
    build/tests/test_amx 2>&1 | tail -25
    build/tests/test_wmat 2>&1 | tail -3
    T="timeout 420"
    B="./flamingo bench --synthetic openflamingo-3b -t 2 --json"
    $T taskset -c 0,1 $B --dtype bf16 >"$OUT/c_bf16_amx.json" 2>&1 &
    FLAMINGO_KERNELS=avx512bf16 $T taskset -c 2,3 $B --dtype bf16 >"$OUT/c_bf16_noamx.json" 2>&1 &
    $T taskset -c 4,5 $B --dtype q8_0 >"$OUT/c_q8_amx.json" 2>&1 &
    FLAMINGO_KERNELS=avx512bf16 $T taskset -c 6,7 $B --dtype q8_0 >"$OUT/c_q8_noamx.json" 2>&1 &
    $T taskset -c 8,9 python3 bench/pytorch_peer.py --dtype bf16 --threads 2 --json >"$OUT/py_bf16.json" 2>&1 &
    $T taskset -c 10,11 python3 bench/pytorch_peer.py --dtype f32 --threads 2 --json >"$OUT/py_f32.json" 2>&1 &
    (
        for d in bf16 q8_0; do
            $T taskset -c 12,13 ./flamingo bench --synthetic gemm --dtype $d -t 2 >>"$OUT/gemm_amx.txt" 2>&1
        done
    ) &
    (
        for d in bf16 q8_0; do
            FLAMINGO_KERNELS=avx512bf16 $T taskset -c 14,15 ./flamingo bench --synthetic gemm --dtype $d -t 2 \
                >>"$OUT/gemm_noamx.txt" 2>&1
        done
    ) &
    wait
    for f in "$OUT"/*; do
        echo "== $f"
        tail -c 3000 "$f"
    done
    ;;
*)
    echo "usage: tools/device_check.sh pack|run" >&2
    exit 2
    ;;
esac
