#!/usr/bin/env bash
# Create .venv/ and install pixelrefer-data with everything it needs: torch + torchvision
# first, then SAM 2 (a source package: built without its CUDA extension and without build
# isolation, so that it builds against this torch instead of fetching a second one), then the
# package itself with its test tools (its sam2 requirement is then already met). Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install "setuptools>=68" wheel "torch>=2.4,<3" "torchvision>=0.19,<1"
SAM2_BUILD_CUDA=0 pip install --no-build-isolation "sam2==1.1.0"
pip install -e ".[test]"
