#!/usr/bin/env bash
# Create .venv/ and install pixelrefer-data with everything it needs: torch + torchvision
# (first, because sam2 builds against them), the package with its test tools, then SAM 2
# (a source package: built without its CUDA extension and without build isolation, so that
# it uses this torch instead of fetching a second one). Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install "torch>=2.4,<3" "torchvision>=0.19,<1"
pip install -e ".[test]"
SAM2_BUILD_CUDA=0 pip install --no-build-isolation "sam2==1.1.0"
