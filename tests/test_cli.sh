#!/bin/sh
# test_cli.sh - the command line's contract: results of the right size, and
# every error is exactly one line on stderr with a non-zero exit status
# (2 for bad usage, 1 for a failure).
set -u
BIN=${FLAMINGO_BIN:-./flamingo}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
n=0

# expect STATUS WANT_IN_STDERR CMD...: exit status, one stderr line containing the text
expect() {
    want=$1 text=$2
    shift 2
    n=$((n + 1))
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" -ne "$want" ] || [ "$lines" -ne 1 ] || ! grep -qF -- "$text" "$tmp/err"; then
        echo "FAIL: $* -> exit $rc (want $want), $lines stderr lines, wanted '$text':"
        sed 's/^/    /' "$tmp/err"
        fails=$((fails + 1))
    fi
}

# ok CMD...: exit 0, nothing on stderr
ok() {
    n=$((n + 1))
    if ! "$@" >"$tmp/out" 2>"$tmp/err" || [ -s "$tmp/err" ]; then
        echo "FAIL: $* should succeed quietly:"
        sed 's/^/    /' "$tmp/err"
        fails=$((fails + 1))
    fi
}

size_is() {
    n=$((n + 1))
    got=$(stat -c %s "$1")
    [ "$got" -eq "$2" ] || { echo "FAIL: $1 is $got bytes, want $2"; fails=$((fails + 1)); }
}

F=tests/fixtures
IMG=$F/img/cat.jpg
printf 'not an image at all' >"$tmp/bad.jpg"
head -c 700 "$IMG" >"$tmp/truncated.jpg"
head -c 5000 $F/clip_quickgelu.safetensors >"$tmp/truncated.safetensors"

expect 2 "usage" "$BIN"
expect 2 "unknown command 'frobnicate'" "$BIN" frobnicate
expect 2 "-i IMG and -o OUT are required" "$BIN" preprocess -i "$IMG"
expect 2 "unexpected argument 'extra'" "$BIN" preprocess -i "$IMG" -o "$tmp/x" extra
expect 2 "--kind must be open_clip or idefics" "$BIN" preprocess -i "$IMG" -o "$tmp/x" --kind bogus
expect 2 "--size must be an integer" "$BIN" preprocess -i "$IMG" -o "$tmp/x" --size 12abc
expect 1 "$tmp/missing.png: cannot open" "$BIN" preprocess -i "$tmp/missing.png" -o "$tmp/x"
expect 1 "$tmp/bad.jpg: not a decodable image" "$BIN" preprocess -i "$tmp/bad.jpg" -o "$tmp/x"
expect 1 "$tmp/truncated.jpg: truncated JPEG" "$BIN" preprocess -i "$tmp/truncated.jpg" -o "$tmp/x"
expect 1 "$tmp/nodir/x: cannot create" "$BIN" preprocess -i "$IMG" -o "$tmp/nodir/x"
expect 2 "-m MODEL, -i IMG and -o OUT are required" "$BIN" encode -i "$IMG" -o "$tmp/x"
expect 2 "--threads must be an integer" "$BIN" encode -t zero -m $F/clip_quickgelu.safetensors -i "$IMG" -o "$tmp/x"
expect 2 "--batch must be an integer in [1, 64]" "$BIN" encode --batch 0 -m $F/clip_quickgelu.safetensors -i "$IMG" -o "$tmp/x"
expect 1 "$tmp/truncated.safetensors: " "$BIN" encode -m "$tmp/truncated.safetensors" -i "$IMG" -o "$tmp/x"
expect 1 "$F/st_basic.safetensors: no config" "$BIN" encode -m $F/st_basic.safetensors -i "$IMG" -o "$tmp/x"
expect 1 "$IMG: header" "$BIN" encode -m "$IMG" -i "$IMG" -o "$tmp/x"
expect 1 "$tmp/bad.jpg: not a decodable image" "$BIN" encode -m $F/clip_quickgelu.safetensors -i "$IMG" -i "$tmp/bad.jpg" -o "$tmp/x"
expect 2 "expects exactly one model file" "$BIN" info
expect 1 "$tmp/truncated.safetensors: " "$BIN" info "$tmp/truncated.safetensors"
expect 2 "unknown synthetic model 'gpt-5'" "$BIN" bench --synthetic gpt-5
expect 2 "--threads must be an integer" "$BIN" bench --synthetic vit-l-14 -t -3
expect 2 "--dtype must be f32, bf16 or q8_0" "$BIN" bench --synthetic openflamingo-3b --dtype q4_0
expect 2 "--quality compares --dtype bf16 or q8_0 with f32" "$BIN" bench --synthetic openflamingo-3b --quality

ok "$BIN" preprocess -i "$IMG" -o "$tmp/p.f32"
size_is "$tmp/p.f32" $((3 * 224 * 224 * 4))
ok "$BIN" preprocess -i "$IMG" -o "$tmp/p.u8" --u8 --size 32 --kind idefics
size_is "$tmp/p.u8" $((32 * 32 * 3))
ok "$BIN" preprocess -i "$IMG" -o "$tmp/m.f32" -m $F/clip_gelu.safetensors
size_is "$tmp/m.f32" $((3 * 32 * 32 * 4))
ok "$BIN" encode -m $F/clip_quickgelu.safetensors -i "$IMG" -i $F/img/cat.png -i $F/img/cat.gif -o "$tmp/e.f32" --batch 2 -t 1
size_is "$tmp/e.f32" $((3 * 16 * 64 * 4))
ok "$BIN" encode -m $F/clip_gelu.safetensors -i "$IMG" -o "$tmp/g.f32"
size_is "$tmp/g.f32" $((17 * 48 * 4))
ok "$BIN" info $F/clip_gelu.safetensors
n=$((n + 1))
grep -q "vision      ViT 32x32 patch 8, width 48, 3 layers" "$tmp/out" || { echo "FAIL: info output"; fails=$((fails + 1)); }
ok "$BIN" --version
n=$((n + 1))
grep -q "q8_0 rows int16$" "$tmp/out" || { echo "FAIL: --version: q8_0 rows"; fails=$((fails + 1)); }
# FLAMINGO_Q8_ACT=int8: q8_0 rows through the int8 kernel where the CPU has it (AVX-512 VNNI)
ok env FLAMINGO_Q8_ACT=int8 "$BIN" --version
n=$((n + 1))
if grep -q "^kernels avx512" "$tmp/out"; then want="q8_0 rows int8$"; else want="q8_0 rows int16$"; fi
grep -q "$want" "$tmp/out" || { echo "FAIL: FLAMINGO_Q8_ACT=int8 --version: $want"; fails=$((fails + 1)); }
expect 2 "FLAMINGO_Q8_ACT must be int16 or int8, not 'int4'" env FLAMINGO_Q8_ACT=int4 "$BIN" --version
# FLAMINGO_KERNELS: a table's name picks it (a lesser one here), a name that is no table is an error
ok env FLAMINGO_KERNELS=generic "$BIN" --version
grep -q "kernels generic," "$tmp/out" || { echo "FAIL: FLAMINGO_KERNELS=generic --version"; fails=$((fails + 1)); }
expect 2 "FLAMINGO_KERNELS must be generic, avx2, avx512, avx512bf16 or amx, not 'avx9'" \
    env FLAMINGO_KERNELS=avx9 "$BIN" --version
# the kernel benchmark runs and names the kernel mat_gemm_w picks (its
# figures are not checked: benchmarks measure, tests do not)
ok "$BIN" bench --synthetic gemm --dtype q8_0 --json -t 2
n=$((n + 1))
${PYTHON:-python3} -c '
import json, sys
j = json.load(open(sys.argv[1]))
r = j["results"]
assert len(r) == 30, len(r)
# 1 row and up to some number of rows (the table'"'"'s own threshold, core/kern.h) take the int16
# kernel, more rows the bf16 kernel where the table has it, else the widened panel; past 64
# rows (core/mat.c) the panel widened to f32 for sgemm
more = "bf16 dot" if j["kernels"] == "avx512bf16" else "panel, 4x3 tiles"
assert j["q8_act"] == "int16", j["q8_act"]
for shape in {(e["n"], e["k"]) for e in r}:
    seen_more = False
    for e in sorted((e for e in r if (e["n"], e["k"]) == shape), key=lambda e: e["m"]):
        want = ("panel, sgemm",) if e["m"] > 64 else ("int16 rows", more)
        assert e["ms"] > 0 and e["kernel"] in want, e
        assert e["m"] > 1 or e["kernel"] == "int16 rows", e
        assert not (seen_more and e["kernel"] == "int16 rows"), e
        seen_more = seen_more or e["kernel"] == more
' "$tmp/out" || { echo "FAIL: bench --synthetic gemm output"; fails=$((fails + 1)); }

echo "$n checks, $fails failed"
[ "$fails" -eq 0 ]
