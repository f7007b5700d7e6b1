#!/usr/bin/env bash
# Set up brushpy on a fresh machine: a Vulkan driver when none is present
# (Mesa's lavapipe on Linux), Xvfb for the GUI tests (with --test), and the
# package itself with pip.
#
#   bash scripts/setup.sh          # runtime: driver + `pip install .[viewer,sfm,web,video]`
#   bash scripts/setup.sh --test   # also Xvfb, Chromium (the web viewer's browser test), the test dependencies
#                                  # and the rerun and distributed (Ray) extras
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

PY=${PYTHON:-python3}
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

apt_pkgs=()
if [ "$(uname -s)" = "Linux" ] && command -v apt-get >/dev/null 2>&1; then
    # lavapipe's ICD file: present when mesa-vulkan-drivers is installed
    if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
        apt_pkgs+=(mesa-vulkan-drivers libvulkan1)
    fi
    if [ "$want_test" = 1 ] && ! command -v Xvfb >/dev/null 2>&1; then
        apt_pkgs+=(xvfb)
    fi
    # the web viewer's browser test drives Debian's Chromium with Playwright (no `playwright install`)
    if [ "$want_test" = 1 ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
        apt_pkgs+=(chromium)
    fi
    # glfw needs an X client library for the desktop window
    if ! ldconfig -p 2>/dev/null | grep -q libX11.so.6; then apt_pkgs+=(libx11-6); fi
    if [ ${#apt_pkgs[@]} -gt 0 ]; then
        echo "setup: installing ${apt_pkgs[*]} with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}"
    fi
fi

extras="viewer,sfm,web,video"  # video: PyAV, MP4 output of `brushpy render --path`
[ "$want_test" = 1 ] && extras="$extras,test"
# the Rerun test runs in CI (rerun-sdk: a 170 MB wheel, so [test] leaves it out for users)
[ "$want_test" = 1 ] && extras="$extras,rerun"
# `brushpy batch` and `--partition` run on Ray (tests/test_batch.py, tests/test_partition.py start a local 2-CPU cluster); CI must run them
[ "$want_test" = 1 ] && extras="$extras,distributed"
echo "setup: pip install .[$extras]"
$PY -m pip install -q --disable-pip-version-check ".[$extras]"
