#!/usr/bin/env bash
# One real turn on this machine, through real tmux: builds paliadin, starts
# the agent in a private tmux server (claude when it is installed, else the
# example agent that answers with your own words), sends MESSAGE and prints
# the reply. Everything lives under $XDG_STATE_HOME/paliadin-quickstart.
#
#   install/quickstart.sh [--] [MESSAGE]  one turn (default: a greeting)
#   install/quickstart.sh --clean         stop the agent, remove the quickstart's files
#   install/quickstart.sh --help          usage
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${XDG_STATE_HOME:-$HOME/.local/state}/paliadin-quickstart
bin=$root/target/debug
# One tmux server per state directory, so two HOMEs of one user never share it.
socket=paliadin-quickstart-$(printf '%s' "$dir" | cksum | cut -d ' ' -f 1)

usage() {
  cat <<'EOF'
Usage: install/quickstart.sh [--] [MESSAGE]
       install/quickstart.sh --clean

One real turn on this machine, through real tmux: builds paliadin, starts the
agent in a private tmux server (claude when it is installed, else the example
agent, which answers with your own words), sends MESSAGE (default: a greeting)
and prints the reply. Its files live under $XDG_STATE_HOME/paliadin-quickstart.

Options:
  --clean      stop the quickstart's agent and remove its files
  -h, --help   this help
  --           the next argument is the message, even if it starts with -
EOF
}

one_message() {
  echo "quickstart: one message only (quote it)" >&2
  exit 2
}

clean=0
message=""
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --clean) clean=1 ;;
    --)
      [ $# -le 2 ] || one_message
      message=${2:-}
      break
      ;;
    -*)
      echo "quickstart: unknown option $1 (see --help)" >&2
      exit 2
      ;;
    *)
      [ -z "$message" ] || one_message
      message=$1
      ;;
  esac
  shift
done

if [ "$clean" = 1 ]; then
  removed=0
  if tmux -L "$socket" kill-server 2>/dev/null; then
    echo "stopped the quickstart's tmux server ($socket)"
    removed=1
  fi
  # tmux leaves its socket file behind, killed or not.
  socket_file=${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$socket
  if [ -S "$socket_file" ]; then
    rm -f -- "$socket_file"
    echo "removed $socket_file"
    removed=1
  fi
  if [ -e "$dir" ]; then
    rm -rf "$dir"
    echo "removed $dir"
    removed=1
  fi
  [ "$removed" = 1 ] || echo "nothing to remove: no $dir and no tmux server $socket"
  exit 0
fi
message=${message:-"Hello from the paliadin quickstart!"}

# shellcheck source=install/deps.sh
. install/deps.sh
paliadin_ensure_packages tmux:tmux
command -v cargo >/dev/null || { echo "quickstart: cargo is missing: install Rust (https://rustup.rs)" >&2; exit 1; }
echo "quickstart: building (cargo build --workspace)..." >&2
cargo build --quiet --workspace --bins

toml_string() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }
mkdir -p "$dir/work"
agent_env=""
if command -v claude >/dev/null 2>&1; then
  # As install/laptop.sh starts it, less the folder trust it records.
  agent="[\"claude\", \"--permission-mode\", \"dontAsk\", \"--strict-mcp-config\", \"--disallowedTools\", \"AskUserQuestion\"]"
  agent_env='agent_env = { CLAUDE_CODE_MAX_RETRIES = "3", DISABLE_AUTOUPDATER = "1" }'
  echo "quickstart: agent: claude (if it stops on a dialog, see install/laptop.sh)" >&2
else
  agent="[$(toml_string "$bin/paliadin-test-agent")]"
  echo "quickstart: agent: the example agent (claude is not installed)" >&2
fi
cat >"$dir/shim.toml" <<TOML
# written by install/quickstart.sh
agent = $agent
$agent_env
workdir = $(toml_string "$dir/work")
tmux_socket = "$socket"
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
