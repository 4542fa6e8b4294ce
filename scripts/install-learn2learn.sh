#!/usr/bin/env bash
# Install learn2learn 0.2.0 beside the suite, so that `suite bench` times it in the same run (optional).
#
# `pip install learn2learn` fails on Python >= 3.11: its 0.2.0 sdist ships C files that Cython 0.29 generated for
# Python 3.7-3.9 (they include longintrepr.h, which Python 3.11 moved). This regenerates them from the sdist's own
# .pyx sources and builds that. The sdist comes from the package registry; nothing else is changed.
set -euo pipefail
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m pip install "cython<3" wheel setuptools
"$python" -m pip download --no-deps --no-binary :all: learn2learn==0.2.0 -d "$work"
tar -xzf "$work"/learn2learn-0.2.0.tar.gz -C "$work"
(cd "$work/learn2learn-0.2.0" && "$python" -m cython -3 learn2learn/data/*.pyx)
# what importing learn2learn needs: gym and torchvision (qpth, for MetaOptNet only, requires NumPy 1, which pandas 3
# refuses; its other dependencies serve dataset downloads), keeping the NumPy the suite runs on
numpy_now=$("$python" -c "import numpy; print(numpy.__version__)" 2>/dev/null || true)
"$python" -m pip install torchvision gym ${numpy_now:+"numpy==$numpy_now"}
"$python" -m pip install --no-build-isolation --no-deps "$work/learn2learn-0.2.0"
"$python" -c "import learn2learn; print('learn2learn', learn2learn.__version__, 'installed')"
