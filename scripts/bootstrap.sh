#!/usr/bin/env bash
# Create (or reuse) the virtualenv with every pinned package, and link it as ./.venv.
# The venv lives outside the clone, keyed by a hash of the pins, so a fresh clone on the same
# machine reuses it instead of installing ~6 GB again. STUDIO_VENV overrides the location.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
deps=$("$python" - <<'PY'
import tomllib
data = tomllib.load(open("pyproject.toml", "rb"))
print("\n".join(data["project"]["dependencies"] + data["project"]["optional-dependencies"]["dev"]))
PY
)
key=$( (cat requirements.lock; echo "$deps") | sha256sum | cut -c1-16)
venv=${STUDIO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-studio/venv-$key}
mkdir -p "$(dirname "$venv")"
# Several clones on one machine may bootstrap at once: one builds, the others wait for it
# (without the lock a second one deleted the venv the first was installing into).
exec 9>"$venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  echo "bootstrap: creating $venv (first run installs torch and friends, a few minutes)" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  log="$venv.install.log"
  "$venv/bin/python" -m pip install --quiet --upgrade pip >"$log" 2>&1 || { cat "$log"; exit 1; }
  echo "$deps" | xargs "$venv/bin/python" -m pip install --quiet -c requirements.lock >>"$log" 2>&1 \
    || { grep -v "is ignored: it is neither" "$log"; exit 1; }
  touch "$venv/.complete"
fi
flock -u 9
ln -sfn "$venv" .venv
