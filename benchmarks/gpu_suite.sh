#!/usr/bin/env bash
# The GPU suite (benchmarks/gpu_suite.py) as a lent GPU machine runs it, as is.
#
# Here, once (no GPU needed):
#   benchmarks/gpu_suite.sh --stage-data [DATASETS]   # copy lego_400 (train split only) and beer_colmap
#                                                    # into .data/datasets (~21 MiB; ignored by git)
#   plus the Vulkan loader debs in .gl/ and the wheels in .whl/ (docs/DEVELOPING.md, "GPU suite").
# There (device tool, carry [".gl", ".whl", ".data"]):
#   benchmarks/gpu_suite.sh [gpu_suite.py options]     # writes into $OUT
#
# On the machine it unpacks the carried loader debs when no libvulkan is installed, points
# VK_DRIVER_FILES at NVIDIA's ICD when that file exists and nothing else was set, installs the
# carried wheels into /tmp/site, uses .data/datasets when present, then runs gpu_suite.py.
set -u
cd "$(dirname "$0")/.." || exit 1

if [ "${1:-}" = "--stage-data" ]; then
    src=${2:-../shared/datasets}
    dst=.data/datasets
    grep -qx '/.data/' .git/info/exclude 2>/dev/null || echo /.data/ >>"$(git rev-parse --git-path info/exclude)"
    mkdir -p "$dst/lego_400" || exit 1
    cp "$src/lego_400/transforms_train.json" "$dst/lego_400/" && cp -r "$src/lego_400/train" "$dst/lego_400/" \
        && cp -r "$src/beer_colmap" "$dst/" || exit 1
    du -sh "$dst"
    exit 0
fi

if [ -d .gl ] && ! ldconfig -p 2>/dev/null | grep -q libvulkan; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then
    export VK_DRIVER_FILES=$icd
fi
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -z "${BRUSHPY_DATASETS:-}" ] && [ -d .data/datasets ]; then
    export BRUSHPY_DATASETS=$PWD/.data/datasets
fi
exec python3 benchmarks/gpu_suite.py "$@"
