# shellcheck shell=bash
# Installs the Debian/Ubuntu packages paliadin needs when they are missing:
# as root with apt-get, else through sudo, else it says what to install.
# Sourced by tests/run and install/quickstart.sh; defines one function.

# paliadin_ensure_packages PKG... : each PKG is "command:package".
paliadin_ensure_packages() {
  local need=() spec cmd pkg
  for spec in "$@"; do
    cmd=${spec%%:*}
    pkg=${spec#*:}
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
      need+=("$pkg")
    fi
  done
  [ ${#need[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      printf 'paliadin: missing %s: install them and run this again\n' "${need[*]}" >&2
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    printf 'paliadin: missing %s: install them with your package manager\n' "${need[*]}" >&2
    return 1
  fi
  printf 'paliadin: installing %s\n' "${need[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
}
