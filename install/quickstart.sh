#!/usr/bin/env bash
# One real turn on this machine, through real tmux: builds paliadin, starts
# the agent in a private tmux server (claude when it is installed, else the
# example agent that answers with your own words), sends MESSAGE and prints
# the reply. Everything lives under $XDG_STATE_HOME/paliadin-quickstart.
#
#   install/quickstart.sh [MESSAGE]     one turn (default: a greeting)
#   install/quickstart.sh --clean       stop the agent, remove the quickstart's files
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${XDG_STATE_HOME:-$HOME/.local/state}/paliadin-quickstart
bin=$root/target/debug

if [ "${1:-}" = "--clean" ]; then
  tmux -L paliadin-quickstart kill-server 2>/dev/null || true
  rm -rf "$dir"
  echo "removed $dir"
  exit 0
fi
message=${1:-"Hello from the paliadin quickstart!"}

# shellcheck source=install/deps.sh
. install/deps.sh
paliadin_ensure_packages tmux:tmux
command -v cargo >/dev/null || { echo "quickstart: cargo is missing: install Rust (https://rustup.rs)" >&2; exit 1; }
echo "quickstart: building (cargo build --workspace)..." >&2
cargo build --quiet --workspace --bins

toml_string() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }
mkdir -p "$dir/work"
if command -v claude >/dev/null 2>&1; then
  agent="[\"claude\", \"--permission-mode\", \"dontAsk\", \"--disallowedTools\", \"AskUserQuestion\"]"
  echo "quickstart: agent: claude (if it stops on a dialog, see install/laptop.sh)" >&2
else
  agent="[$(toml_string "$bin/paliadin-test-agent")]"
  echo "quickstart: agent: the example agent (claude is not installed)" >&2
fi
cat >"$dir/shim.toml" <<TOML
# written by install/quickstart.sh
agent = $agent
workdir = $(toml_string "$dir/work")
tmux_socket = "paliadin-quickstart"
state_dir = $(toml_string "$dir/state")
TOML

export PALIADIN_SHIM_CONFIG="$dir/shim.toml"
status=0
"$bin/paliadin-cli" --transport local --shim "$bin/paliadin-shim" --db "$dir/turns.db" \
  turn --session quickstart -- "$message" || status=$?
cat >&2 <<EOF2

quickstart: watch the agent:  PALIADIN_SHIM_CONFIG=$dir/shim.toml $bin/paliadin-shim attach quickstart
quickstart: the turn log:     $bin/paliadin-cli --db $dir/turns.db log
quickstart: clean up:         install/quickstart.sh --clean
EOF2
exit "$status"
