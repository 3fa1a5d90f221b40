#!/bin/sh
# deps.sh - install the Debian/Ubuntu packages that the build, the tests and
# the Python tooling need.  `deps.sh --check` only reports (exit 1 and the
# list on stdout when something is missing).  Runs apt-get as root, through
# sudo otherwise; refreshes the package lists only when an install fails.
# An entry "a|b" takes the first alternative the archive knows (Debian ships
# libjpeg62-turbo-dev, Ubuntu libjpeg-turbo8-dev: the same decoder).
set -u

PKGS="make gcc libc6-dev pkg-config coreutils
libmicrohttpd-dev libcjson-dev libstb-dev libopenblas-pthread-dev
libjpeg62-turbo-dev|libjpeg-turbo8-dev zlib1g-dev libutf8proc-dev libssl-dev
python3 python3-numpy python3-pil python3-torch python3-torchvision python3-skimage python3-matplotlib python3-regex
curl"

TEST=""
CHECK=""
for arg in "$@"; do
    case "$arg" in
    --test) TEST=1 ;;
    --check) CHECK=1 ;;
    esac
done
if [ -n "$TEST" ]; then
    PKGS="$PKGS chromium"
    command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
    command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
fi

installed() {
    dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'
}

missing=""
for entry in $PKGS; do
    ok=""
    for alt in $(echo "$entry" | tr '|' ' '); do
        installed "$alt" && ok=1 && break
    done
    [ -n "$ok" ] && continue
    pick=""
    for alt in $(echo "$entry" | tr '|' ' '); do
        if apt-cache show "$alt" >/dev/null 2>&1; then pick=$alt; break; fi
    done
    missing="$missing ${pick:-${entry%%|*}}"
done

if [ -n "$CHECK" ]; then
    [ -z "$missing" ] && exit 0
    echo "$missing"
    exit 1
fi
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$SUDO apt-get install -y --no-install-recommends $missing >&2 ||
    { $SUDO apt-get update >&2 && $SUDO apt-get install -y --no-install-recommends $missing >&2; }
