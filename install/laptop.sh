#!/usr/bin/env bash
# Sets up a laptop for paliadin-shim: the binary, the skill, the shim's
# config, the agent's workdir (trusted in ~/.claude.json) and, given the
# server's public key, the authorized_keys line that forces every call of
# that key into the shim. Idempotent; --dry-run changes nothing; --uninstall
# undoes exactly what the manifest says was done.
#
# The work is the shim's own (`paliadin-shim setup`, the same options): this
# script only checks the options, finds the binary (or builds it) and hands
# over to it.
set -euo pipefail

PROG=laptop.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(dirname "$HERE")
# shellcheck source=install/lib.sh
. "$HERE/lib.sh"

usage() {
  cat <<'EOF'
Usage: install/laptop.sh [options]

Installs paliadin-shim on this laptop so that a server can reach Claude Code
over ssh. Run it again at any time: it changes only what differs.

Options:
  --shim-bin PATH     the paliadin-shim binary to install (default: the
                      repository's target/release, else target/debug build,
                      else paliadin-shim on PATH)
  --prefix DIR        where to install the binary (default: ~/.local/bin)
  --pubkey KEY        the server's public key, a .pub file or the key text
                      ('ssh-ed25519 AAAA...'); without it authorized_keys is
                      left alone
  --from PATTERNS     restrict the key to these client addresses (from="...")
  --workdir DIR       the agent's working directory (default: ~/paliadin-work)
  --agent COMMAND     the agent's command line, used as given (default: claude
                      with unattended permissions; without claude on PATH and
                      without --agent the installer stops, exit 2)
  --persona FILE      text that replaces the skill's persona section
  --allow-bash        let the agent run commands, inside Claude Code's sandbox
  --tmux-socket NAME  the shim's tmux server (default: paliadin)
  --wait-secs N       how long a turn waits for its reply (default: 60)
  --force             replace a SKILL.md this installer did not write
  --dry-run           print every change, change nothing
  --uninstall         undo what this installer did (see its manifest)
  --yes               ask no questions
  -h, --help          this help

Files: <prefix>/paliadin-shim, ~/.claude/skills/paliadin/SKILL.md,
~/.config/paliadin/shim.toml (0600), ~/.config/paliadin/install-laptop.manifest,
~/.ssh/authorized_keys (one line added), ~/.claude.json (one trust entry).
EOF
}

SHIM_BIN=""
# The options setup takes; --help needs no binary.
check_options() {
  while [ $# -gt 0 ]; do
    case $1 in
      --shim-bin) need_arg "$@"; SHIM_BIN=$2; shift ;;
      --prefix | --pubkey | --from | --workdir | --agent | --tmux-socket | --wait-secs | --persona)
        need_arg "$@"
        shift
        ;;
      --force | --allow-bash | --dry-run | --uninstall | --yes | -y) ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
    shift
  done
}
check_options "$@"

[ -n "${HOME:-}" ] || die "HOME is not set"
if [ -z "$SHIM_BIN" ]; then
  SHIM_BIN=$(find_built paliadin-shim "$ROOT") || SHIM_BIN=""
  if [ -z "$SHIM_BIN" ] && [ -f "$ROOT/Cargo.toml" ] && command -v cargo >/dev/null 2>&1; then
    say "$PROG: building paliadin-shim (cargo build --release -p paliadin-shim)" >&2
    (cd "$ROOT" && cargo build --release -p paliadin-shim >&2) || die "cargo build failed"
    SHIM_BIN=$ROOT/target/release/paliadin-shim
  fi
  [ -n "$SHIM_BIN" ] ||
    die "no paliadin-shim found: build it (cargo build --release -p paliadin-shim) or give --shim-bin"
fi
SHIM_BIN=$(abspath "$SHIM_BIN")
if [ ! -f "$SHIM_BIN" ] || [ ! -x "$SHIM_BIN" ]; then
  die "--shim-bin: not an executable file: $SHIM_BIN"
fi
# setup installs the binary it is given (this one, by default).
exec "$SHIM_BIN" setup --invoked-as "$PROG" --shim-bin "$SHIM_BIN" "$@"
