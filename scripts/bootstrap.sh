#!/usr/bin/env bash
# Install what tickvault needs on a fresh Debian machine: server binaries (when missing) and a
# virtual environment with the package and its dev tools. Safe to run again; fast when done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ "${TICKVAULT_WITH_MONITORING:-1}" = 1 ]; then
  command -v promtool >/dev/null || need_apt+=(prometheus)
  command -v amtool >/dev/null || need_apt+=(prometheus-alertmanager)
  command -v docker-compose >/dev/null || need_apt+=(docker-compose)
  command -v prometheus-node-exporter >/dev/null || need_apt+=(prometheus-node-exporter)
  command -v prometheus-postgres-exporter >/dev/null || need_apt+=(prometheus-postgres-exporter)
  command -v prometheus-redis-exporter >/dev/null || need_apt+=(prometheus-redis-exporter)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing ${need_apt[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: missing ${need_apt[*]}; install them (sudo apt-get install ${need_apt[*]})" >&2
  fi
fi

if [ ! -x .venv/bin/uv ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q uv
fi
# (Re)install when the packaging or a Cython source changed since the last install, or a
# compiled module is missing: the editable install compiles every src/tickvault/**/_*.pyx into
# a .so next to it (setup.py), which `import` then prefers to the pure-Python fallback.
stamp=.venv/.tickvault-installed
install_stale() {
  [ -f "$stamp" ] || return 0
  [ -n "$(find pyproject.toml setup.py src/tickvault -newer "$stamp" \
    \( -name pyproject.toml -o -name setup.py -o -name '*.pyx' -o -name '*.pxd' \) \
    -print -quit)" ] && return 0
  [ "${TICKVAULT_PURE_PYTHON:-0}" = 1 ] && return 1
  local pyx
  while IFS= read -r pyx; do
    compgen -G "${pyx%.pyx}.*.so" >/dev/null || return 0
  done < <(find src/tickvault -name '_*.pyx')
  return 1
}
if install_stale; then
  .venv/bin/uv pip install -q --python .venv/bin/python -e '.[dev]'
  touch "$stamp"
fi
