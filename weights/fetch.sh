#!/bin/sh
# fetch.sh - download a public OpenFlamingo v2 model and convert it into one
# flamingo.c model file.
#
#   weights/fetch.sh NAME [DIR]        # DIR defaults to ./models
#   weights/fetch.sh --list
#
# NAME is one of the five released models (see --list, or `flamingo models`
# for sizes and memory).  Into DIR/downloads/ it fetches, with curl:
#   - OpenFlamingo's checkpoint.pt (huggingface.co/openflamingo/...),
#   - the language model's config.json, tokenizer.json and weights (a single
#     file or every shard its index lists), from the HF repo OpenFlamingo used,
#   - CLIP ViT-L/14: OpenAI's ViT-L-14.pt (the file open_clip <= 2.28 loads),
# then runs weights/convert.py into DIR/NAME.DTYPE.safetensors.
#
# Every file is checked against what the hub publishes: its size, and its
# sha256 (LFS files) or git blob sha1 (small files), both from the hub's
# /api/models/REPO/tree/REVISION listing; ViT-L-14.pt against the sha256 in its
# URL.  Downloads resume (curl -C -) where an earlier run stopped; a file that
# fails its check is removed so that the next run starts it afresh.  Files
# already verified are not downloaded or hashed again.
#
# Environment:
#   FLAMINGO_DTYPE         f32 (default), f16, bf16 or q8_0: the converted file's dtype
#   FLAMINGO_HF_ENDPOINT   hub address (default https://huggingface.co); a mirror works
#   FLAMINGO_HF_REVISION   revision of every repo (default main)
#   HF_TOKEN               sent as a bearer token when set
#   FLAMINGO_CLIP_URL      where to get ViT-L-14.pt (default OpenAI's address), and
#   FLAMINGO_CLIP_SHA256   its sha256 (default: the one in OpenAI's address)
#   FLAMINGO_CONVERT_ARGS  extra arguments for convert.py
#   PYTHON                 python3 with numpy and torch (default python3)
#   FLAMINGO_NO_CONVERT=1  download and verify only
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
ENDPOINT=${FLAMINGO_HF_ENDPOINT:-https://huggingface.co}
REVISION=${FLAMINGO_HF_REVISION:-main}
DTYPE=${FLAMINGO_DTYPE:-f32}
CLIP_SHA=${FLAMINGO_CLIP_SHA256:-b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836}
CLIP_URL=${FLAMINGO_CLIP_URL:-https://openaipublic.azureedge.net/clip/models/$CLIP_SHA/ViT-L-14.pt}

die() { echo "fetch.sh: error: $*" >&2; exit 1; }
say() { echo "fetch.sh: $*" >&2; }

# name | OpenFlamingo repo | language-model repo (as open_flamingo's README uses them)
MODELS="openflamingo-3b-vitl-mpt1b|openflamingo/OpenFlamingo-3B-vitl-mpt1b|anas-awadalla/mpt-1b-redpajama-200b
openflamingo-3b-vitl-mpt1b-langinstruct|openflamingo/OpenFlamingo-3B-vitl-mpt1b-langinstruct|anas-awadalla/mpt-1b-redpajama-200b-dolly
openflamingo-4b-vitl-rpj3b|openflamingo/OpenFlamingo-4B-vitl-rpj3b|togethercomputer/RedPajama-INCITE-Base-3B-v1
openflamingo-4b-vitl-rpj3b-langinstruct|openflamingo/OpenFlamingo-4B-vitl-rpj3b-langinstruct|togethercomputer/RedPajama-INCITE-Instruct-3B-v1
openflamingo-9b-vitl-mpt7b|openflamingo/OpenFlamingo-9B-vitl-mpt7b|anas-awadalla/mpt-7b"

usage() {
    echo "usage: weights/fetch.sh NAME [DIR]    (DIR defaults to ./models)" >&2
    echo "       weights/fetch.sh --list" >&2
    exit 2
}

[ $# -ge 1 ] || usage
if [ "$1" = "--list" ]; then
    echo "$MODELS" | cut -d'|' -f1
    exit 0
fi
case "$1" in -*) usage ;; esac
[ $# -le 2 ] || usage
NAME=$(echo "$1" | tr 'A-Z' 'a-z')
DIR=${2:-models}
case "$DTYPE" in f32 | f16 | bf16 | q8_0) ;; *) die "FLAMINGO_DTYPE must be f32, f16, bf16 or q8_0, not '$DTYPE'" ;; esac
LINE=$(echo "$MODELS" | grep "^$NAME|" || true)
[ -n "$LINE" ] || die "unknown model '$1'; known: $(echo "$MODELS" | cut -d'|' -f1 | tr '\n' ' ')"
OF_REPO=$(echo "$LINE" | cut -d'|' -f2)
LM_REPO=$(echo "$LINE" | cut -d'|' -f3)
command -v curl >/dev/null || die "curl is not installed"
"$PYTHON" -c 'import numpy' 2>/dev/null || die "$PYTHON cannot import numpy (apt-get install python3-numpy)"

DL="$DIR/downloads"
mkdir -p "$DL"
CURL_AUTH=""
[ -n "${HF_TOKEN:-}" ] && CURL_AUTH="Authorization: Bearer $HF_TOKEN"

curl_get() { # curl_get URL OUT [resume]: fetch URL into OUT, following redirects
    if [ -n "$CURL_AUTH" ]; then
        curl -fL --retry 5 --retry-delay 2 --connect-timeout 30 -sS ${3:+-C -} -H "$CURL_AUTH" -o "$2" "$1"
    else
        curl -fL --retry 5 --retry-delay 2 --connect-timeout 30 -sS ${3:+-C -} -o "$2" "$1"
    fi
}

# tree REPO -> lines "path<TAB>size<TAB>kind<TAB>hash" (kind sha256 for LFS files, else gitsha1)
tree() {
    tr_repo=$1
    tr_out="$DL/$(echo "$tr_repo" | tr '/' '_').tree.json"
    curl_get "$ENDPOINT/api/models/$tr_repo/tree/$REVISION?recursive=true" "$tr_out.tmp" ||
        die "cannot list $tr_repo at $ENDPOINT (revision $REVISION)"
    mv "$tr_out.tmp" "$tr_out"
    "$PYTHON" - "$tr_out" "$tr_repo" <<'EOF'
import json, sys
try:
    items = json.load(open(sys.argv[1]))
    assert isinstance(items, list)
except Exception:
    sys.exit(f"fetch.sh: error: {sys.argv[2]}: the hub's file list is not a JSON array")
for it in items:
    if it.get("type") != "file":
        continue
    lfs = it.get("lfs")
    if lfs:
        print(f"{it['path']}\t{lfs['size']}\tsha256\t{lfs['oid']}")
    else:
        print(f"{it['path']}\t{it['size']}\tgitsha1\t{it['oid']}")
EOF
}

# verify FILE SIZE KIND HASH: exit status 0 when the file matches
verify() {
    "$PYTHON" - "$@" <<'EOF'
import hashlib, os, sys
path, size, kind, want = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].lower()
have = os.path.getsize(path)
if have != size:
    print(f"fetch.sh: {path}: {have} bytes, the hub says {size}", file=sys.stderr)
    sys.exit(1)
h = hashlib.sha256() if kind == "sha256" else hashlib.sha1(b"blob %d\0" % size)
with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 24), b""):
        h.update(block)
if h.hexdigest() != want:
    print(f"fetch.sh: {path}: {kind} {h.hexdigest()} is not the published {want}", file=sys.stderr)
    sys.exit(1)
EOF
}

# fetch_file URL DEST SIZE KIND HASH: download (resuming), verify, mark as verified
fetch_file() {
    ff_url=$1 ff_dest=$2 ff_size=$3 ff_kind=$4 ff_hash=$5
    ff_mark="$ff_dest.verified"
    if [ -f "$ff_dest" ] && [ -f "$ff_mark" ] && [ "$(cat "$ff_mark")" = "$ff_kind:$ff_hash" ]; then
        say "have $ff_dest"
        return 0
    fi
    mkdir -p "$(dirname "$ff_dest")"
    if [ -f "$ff_mark" ]; then rm -f "$ff_dest" "$ff_mark"; fi # verified, but another version
    if [ -f "$ff_dest" ] && ! verify "$ff_dest" "$ff_size" "$ff_kind" "$ff_hash" 2>/dev/null; then
        rm -f "$ff_dest" # left unverified by an interrupted run, and wrong
    fi
    if [ ! -f "$ff_dest" ]; then
        say "downloading $ff_url ($(awk "BEGIN{printf \"%.2f\", $ff_size / 1e9}") GB)"
        ff_part="$ff_dest.part"
        if [ -f "$ff_part" ] && [ "$(wc -c <"$ff_part")" -gt "$ff_size" ]; then rm -f "$ff_part"; fi
        curl_get "$ff_url" "$ff_part" resume || die "download of $ff_url failed (run again to resume)"
        mv "$ff_part" "$ff_dest"
        if ! verify "$ff_dest" "$ff_size" "$ff_kind" "$ff_hash"; then
            rm -f "$ff_dest"
            die "$ff_dest does not match the published file and was removed; run again to download it afresh"
        fi
    fi
    echo "$ff_kind:$ff_hash" >"$ff_mark"
}

# fetch_repo_files REPO DESTDIR FILE...: download the named files of a repo
fetch_repo_files() {
    fr_repo=$1 fr_dir=$2
    shift 2
    fr_listing=$(tree "$fr_repo") || exit 1
    for fr_f in "$@"; do
        fr_row=$(printf '%s\n' "$fr_listing" | awk -F'\t' -v p="$fr_f" '$1 == p')
        [ -n "$fr_row" ] || die "$fr_repo has no file '$fr_f' at revision $REVISION"
        fr_size=$(echo "$fr_row" | cut -f2)
        fr_kind=$(echo "$fr_row" | cut -f3)
        fr_hash=$(echo "$fr_row" | cut -f4)
        fetch_file "$ENDPOINT/$fr_repo/resolve/$REVISION/$fr_f" "$fr_dir/$fr_f" "$fr_size" "$fr_kind" "$fr_hash"
    done
}

# 1. OpenFlamingo's checkpoint
OF_DIR="$DL/$(echo "$OF_REPO" | tr '/' '_')"
fetch_repo_files "$OF_REPO" "$OF_DIR" checkpoint.pt

# 2. the language model: config, tokenizer, and its weights in whichever form the repo has
LM_DIR="$DL/$(echo "$LM_REPO" | tr '/' '_')"
lm_listing=$(tree "$LM_REPO") || exit 1
has() { printf '%s\n' "$lm_listing" | cut -f1 | grep -qx "$1"; }
if has model.safetensors.index.json; then index=model.safetensors.index.json
elif has pytorch_model.bin.index.json; then index=pytorch_model.bin.index.json
elif has model.safetensors; then index="" weights=model.safetensors
elif has pytorch_model.bin; then index="" weights=pytorch_model.bin
else die "$LM_REPO has no weights file this script knows"; fi
fetch_repo_files "$LM_REPO" "$LM_DIR" config.json tokenizer.json ${index:-$weights}
if [ -n "$index" ]; then
    shards=$("$PYTHON" -c '
import json, sys
wm = json.load(open(sys.argv[1]))["weight_map"]
for s in sorted(set(wm.values())):
    if "/" in s or s.startswith("."):
        sys.exit("bad shard name " + s)
    print(s)' "$LM_DIR/$index") || die "$LM_DIR/$index: not a weights index"
    # shellcheck disable=SC2086
    fetch_repo_files "$LM_REPO" "$LM_DIR" $shards
fi
if has special_tokens_map.json; then fetch_repo_files "$LM_REPO" "$LM_DIR" special_tokens_map.json; fi

# 3. CLIP ViT-L/14 (OpenAI's TorchScript archive; its URL names its sha256)
CLIP_SIZE=$(curl -sSIL ${CURL_AUTH:+-H "$CURL_AUTH"} "$CLIP_URL" | tr -d '\r' |
    awk 'tolower($1) == "content-length:" { n = $2 } END { print n }')
[ -n "$CLIP_SIZE" ] || die "cannot reach $CLIP_URL"
fetch_file "$CLIP_URL" "$DL/clip/ViT-L-14.pt" "$CLIP_SIZE" sha256 "$CLIP_SHA"

[ "${FLAMINGO_NO_CONVERT:-0}" = 1 ] && { say "downloaded and verified into $DL"; exit 0; }

# 4. convert
OUT="$DIR/$NAME.$DTYPE.safetensors"
say "converting into $OUT"
# shellcheck disable=SC2086
"$PYTHON" "$HERE/convert.py" --vision "$DL/clip/ViT-L-14.pt" --lm "$LM_DIR" \
    --checkpoint "$OF_DIR/checkpoint.pt" --tokenizer "$LM_DIR/tokenizer.json" \
    --out "$OUT" --dtype "$DTYPE" --name "$NAME" ${FLAMINGO_CONVERT_ARGS:-}
say "done: ./flamingo run -m $OUT -i photo.jpg -p '<image>Output:'"
