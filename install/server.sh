#!/usr/bin/env bash
# Sets up a server for paliadin-cli: the binary, an ssh key pair of its own,
# the laptop's host key pinned in a known_hosts of its own, and cli.toml.
# Idempotent; --dry-run changes nothing; --uninstall undoes exactly what the
# manifest says this script did.
set -euo pipefail

PROG=server.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(dirname "$HERE")
# shellcheck source=install/lib.sh
. "$HERE/lib.sh"

MARK_CONFIG="# written by paliadin install/server.sh"

usage() {
  cat <<'EOF'
Usage: install/server.sh --host HOST [options]

Installs paliadin-cli on this server and prepares its ssh access to the
laptop that runs paliadin-shim. Run it again at any time: it changes only
what differs. It prints the public key to authorize on the laptop.

Options:
  --cli-bin PATH        the paliadin-cli binary to install (default: the
                        repository's target/release, else target/debug build,
                        else paliadin-cli on PATH)
  --prefix DIR          where to install the binary (default: ~/.local/bin)
  --host HOST           the laptop's address (required unless --uninstall)
  --port N              the laptop's sshd port (default: 22022)
  --ssh-user USER       the user on the laptop (default: the current user)
  --key FILE            the client key (default: ~/.config/paliadin/id_ed25519;
                        created when missing, never overwritten)
  --host-key KEY        pin this host key ('ssh-ed25519 AAAA...')
  --host-key-file FILE  pin the host key in FILE (a .pub or known_hosts line)
                        (without either: ssh-keyscan, whose fingerprint is
                        printed for you to compare)
  --known-hosts FILE    where to pin it (default: ~/.config/paliadin/known_hosts)
  --session-prefix P    prefix of the shim session names (default: paliad-paliadin)
  --dry-run             print every change, change nothing
  --uninstall           undo what this installer did (see its manifest)
  --yes                 ask no questions (without a terminal, nothing
                        changes unless --yes: the changes are listed, exit 2)
  -h, --help            this help
EOF
}


CLI_BIN=""
PREFIX=""
HOST=""
PORT=22022
SSH_USER=""
KEY=""
HOST_KEY=""
HOST_KEY_FILE=""
KNOWN_HOSTS=""
SESSION_PREFIX=paliad-paliadin
UNINSTALL=0
ASSUME_YES=0
LISTING=0
while [ $# -gt 0 ]; do
  case $1 in
    --cli-bin) need_arg "$@"; CLI_BIN=$2; shift ;;
    --prefix) need_arg "$@"; PREFIX=$2; shift ;;
    --host) need_arg "$@"; HOST=$2; shift ;;
    --port) need_arg "$@"; PORT=$2; shift ;;
    --ssh-user) need_arg "$@"; SSH_USER=$2; shift ;;
    --key) need_arg "$@"; KEY=$2; shift ;;
    --host-key) need_arg "$@"; HOST_KEY=$2; shift ;;
    --host-key-file) need_arg "$@"; HOST_KEY_FILE=$2; shift ;;
    --known-hosts) need_arg "$@"; KNOWN_HOSTS=$2; shift ;;
    --session-prefix) need_arg "$@"; SESSION_PREFIX=$2; shift ;;
    --dry-run) DRY_RUN=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --yes | -y) ASSUME_YES=1 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

[ -n "${HOME:-}" ] || die "HOME is not set"
CONFIG_DIR="$(xdg "${XDG_CONFIG_HOME:-}" .config)/paliadin"
CONFIG="$CONFIG_DIR/cli.toml"
MANIFEST="$CONFIG_DIR/install-server.manifest"
PREFIX=$(abspath "${PREFIX:-$HOME/.local/bin}")
KEY=$(abspath "${KEY:-$CONFIG_DIR/id_ed25519}")
KNOWN_HOSTS=$(abspath "${KNOWN_HOSTS:-$CONFIG_DIR/known_hosts}")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/paliadin-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# --- uninstall ---------------------------------------------------------------

# The turn log paliadin-cli writes: where the installed binary says (the
# config may name another), else its default. Asked before uninstall removes
# the binary and the config.
turn_log() {
  local db=""
  if [ -x "$PREFIX/paliadin-cli" ]; then
    db=$("$PREFIX/paliadin-cli" config get db 2>/dev/null || true)
  fi
  printf '%s\n' "${db:-$(xdg "${XDG_DATA_HOME:-}" .local/share)/paliadin/turns.db}"
}

# What paliadin-cli made that this installer did not, and so leaves: the
# turn log, the chat history and a live ssh control master (the sockets live
# where paliadin-cli's config.rs says: $XDG_RUNTIME_DIR/paliadin-ssh, else
# $XDG_CACHE_HOME/paliadin/ssh, else /tmp/paliadin-ssh-UID). $1: the turn log.
say_left() {
  local db=$1 history sock dir
  # Said once: not in the listing before the question, only after.
  [ "$LISTING" != 1 ] || return 0
  if [ -e "$db" ]; then
    say "left: the turn log $db (every turn and probe); remove it with: rm -f '$db' '$db-wal' '$db-shm'"
  fi
  history="$(xdg "${XDG_STATE_HOME:-}" .local/state)/paliadin/chat_history"
  if [ -e "$history" ]; then
    say "left: the chat history $history; remove it with: rm -f '$history'"
  fi
  for dir in "${XDG_RUNTIME_DIR:+$XDG_RUNTIME_DIR/paliadin-ssh}" \
    "$(xdg "${XDG_CACHE_HOME:-}" .cache)/paliadin/ssh" "/tmp/paliadin-ssh-$(id -u)"; do
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then continue; fi
    for sock in "$dir"/*; do
      [ -S "$sock" ] || continue
      say "left: a live ssh connection to the laptop (control master $sock); it ends after 60 s unused, or now with: ssh -O exit -S '$sock' laptop"
    done
  done
}

uninstall() {
  if [ ! -f "$MANIFEST" ]; then
    say "nothing to undo: no manifest at $MANIFEST"
    return 0
  fi
  local dirs="" line kind a b entries db
  db=$(turn_log)
  manifest_load
  entries=$(manifest_reversed)
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    kind=${line%%"$TAB"*}
    a=$(printf '%s\n' "$line" | cut -f2)
    b=$(printf '%s\n' "$line" | cut -f3-)
    case $kind in
      bin) remove_file "$a" "the client binary" ;;
      key) remove_file "$a" "the key" ;;
      config)
        if [ -f "$a" ] && ! grep -qxF -- "$MARK_CONFIG" "$a"; then
          say "kept: $a (no longer marked as written by this installer)"
        else
          remove_file "$a" "the client config"
        fi
        ;;
      hostline) remove_line "$a" "$b" hostline ;;
      hostline-file | hostline-newline) ;;
      dir) dirs="$line
$dirs" ;;
      *) warn "unknown manifest entry: $line" ;;
    esac
  done <<EOF
$entries
EOF
  remove_file "$MANIFEST" "the manifest"
  while IFS= read -r line; do
    case $line in "dir$TAB"*) remove_dir "${line#dir"$TAB"}" ;; esac
  done <<EOF
$(printf '%s' "$dirs" | awk '{ l[NR] = $0 } END { for (i = NR; i > 0; i--) print l[i] }')
EOF
  say_left "$db"
}

# --- install -------------------------------------------------------------------

# The known_hosts name of the laptop: [HOST]:PORT, or HOST for port 22.
host_pattern() {
  if [ "$PORT" = 22 ]; then
    printf '%s\n' "$HOST"
  else
    printf '[%s]:%s\n' "$HOST" "$PORT"
  fi
}

# The host key to pin, "type blob".
host_key() {
  local text key
  if [ -n "$HOST_KEY" ]; then
    key=$(printf '%s\n' "$HOST_KEY" | key_type_blob)
    [ -n "$key" ] || die "--host-key: not a public key: $HOST_KEY"
  elif [ -n "$HOST_KEY_FILE" ]; then
    [ -f "$HOST_KEY_FILE" ] || die "--host-key-file: no such file: $HOST_KEY_FILE"
    text=$(grep -v '^[[:space:]]*#' "$HOST_KEY_FILE" || true)
    key=$(printf '%s\n' "$text" | key_type_blob)
    [ -n "$key" ] || die "--host-key-file: no public key in $HOST_KEY_FILE"
  else
    command -v ssh-keyscan >/dev/null 2>&1 || die "ssh-keyscan is missing: give --host-key or --host-key-file"
    text=$(ssh-keyscan -p "$PORT" -t ed25519 "$HOST" 2>/dev/null || true)
    key=$(printf '%s\n' "$text" | key_type_blob)
    [ -n "$key" ] || die "ssh-keyscan got no ed25519 host key from $HOST port $PORT: is sshd running there? Or give --host-key"
    {
      say "note: the host key came from the network (ssh-keyscan); compare its fingerprint below with the laptop's own:"
      say "  on the laptop: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"
    } >&2
  fi
  printf '%s\n' "$key"
}

fingerprint() {
  printf '%s\n' "$1" >"$TMP/fp.pub"
  ssh-keygen -lf "$TMP/fp.pub" 2>/dev/null | awk '{ print $2 }'
}

pin_host_key() {
  local key pattern line blob
  key=$(host_key)
  pattern=$(host_pattern)
  line="$pattern $key"
  blob=${key#* }
  say "host key of $pattern: ${key%% *} $(fingerprint "$key")"
  ensure_dir "$(dirname "$KNOWN_HOSTS")" 700
  if [ -f "$KNOWN_HOSTS" ]; then
    if awk -v p="$pattern" -v b="$blob" '$1 == p && $3 == b { f = 1 } END { exit !f }' "$KNOWN_HOSTS"; then
      # Recorded by the run that added it, if this script added it at all.
      unchanged "the host key of $pattern is pinned in $KNOWN_HOSTS"
      return 0
    fi
    if awk -v p="$pattern" -v t="${key%% *}" '$1 == p && $2 == t { f = 1 } END { exit !f }' "$KNOWN_HOSTS"; then
      die "$KNOWN_HOSTS pins another ${key%% *} key for $pattern. If the laptop's host key really changed: ssh-keygen -R '$pattern' -f $KNOWN_HOSTS, then run this again"
    fi
  fi
  append_line "$KNOWN_HOSTS" "$line" hostline
}

make_key() {
  ensure_dir "$(dirname "$KEY")" 700
  if [ -f "$KEY" ]; then
    [ -f "$KEY.pub" ] || die "$KEY has no $KEY.pub next to it: make it with ssh-keygen -y -f $KEY > $KEY.pub"
    unchanged "the key $KEY exists (never overwritten)"
    return 0
  fi
  [ ! -e "$KEY.pub" ] || die "$KEY.pub exists without $KEY: move it away or give --key"
  change "create the key pair $KEY (ed25519, no passphrase, mode 600)"
  record key "$KEY"
  record key "$KEY.pub"
  [ "$DRY_RUN" = 1 ] && return 0
  ssh-keygen -q -t ed25519 -N '' -C "paliadin-cli" -f "$KEY" </dev/null >/dev/null ||
    die "ssh-keygen failed"
  chmod 600 "$KEY"
}

render_config() {
  say "$MARK_CONFIG"
  say "# paliadin-cli's configuration. Remove the line above to keep"
  say "# install/server.sh from rewriting this file."
  printf 'host = %s\n' "$(toml_str "$HOST")"
  printf 'port = %s\n' "$PORT"
  printf 'ssh_user = %s\n' "$(toml_str "$SSH_USER")"
  printf 'key = %s\n' "$(toml_str "$KEY")"
  printf 'known_hosts = %s\n' "$(toml_str "$KNOWN_HOSTS")"
  printf 'session_prefix = %s\n' "$(toml_str "$SESSION_PREFIX")"
  say "# db = \"~/.local/share/paliadin/turns.db\""
  say "# timeout_secs = 75"
}

install_config() {
  local out="$TMP/cli.toml"
  render_config >"$out"
  ensure_dir "$CONFIG_DIR" 700
  if [ -f "$CONFIG" ] && ! grep -qxF -- "$MARK_CONFIG" "$CONFIG"; then
    say "kept: $CONFIG was not written by this installer; it stays as it is (check host, port, key and known_hosts by hand)"
    return 0
  fi
  install_file "$out" "$CONFIG" 600 config "the client config"
}

install_all() {
  CHANGES=0
  NEW_MANIFEST=""
  DRY_DIRS=""
  manifest_load

  [ -n "$HOST" ] || die "--host is required (the laptop's address)"
  case $HOST in *[!A-Za-z0-9.:_-]*) die "--host: not a host name or address: $HOST" ;; esac
  case $PORT in '' | *[!0-9]*) die "--port: not a number: $PORT" ;; esac
  if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
    die "--port: out of range: $PORT"
  fi
  [ -n "$SSH_USER" ] || SSH_USER=$(id -un)
  case $SESSION_PREFIX in '' | *[!A-Za-z0-9_.-]*) die "--session-prefix: only letters, digits, _ . - allowed: $SESSION_PREFIX" ;; esac

  if [ -z "$CLI_BIN" ]; then
    CLI_BIN=$(find_built paliadin-cli "$ROOT") ||
      die "no paliadin-cli found: build it (cargo build --release -p paliadin-cli) or give --cli-bin"
  fi
  CLI_BIN=$(abspath "$CLI_BIN")
  if [ ! -f "$CLI_BIN" ] || [ ! -x "$CLI_BIN" ]; then
    die "--cli-bin: not an executable file: $CLI_BIN"
  fi

  install_file "$CLI_BIN" "$PREFIX/paliadin-cli" 755 bin "the client binary"
  make_key
  pin_host_key
  install_config
  manifest_save
}

# no_terminal: without a terminal to ask, nothing changes unless --yes.
no_terminal() {
  printf '%s: error: %s\n' "$PROG" "no terminal to ask: nothing was changed; run again with --yes to make the changes listed above" >&2
  exit 2
}

main() {
  if [ "$UNINSTALL" = 1 ]; then
    if [ "$DRY_RUN" != 1 ] && [ "$ASSUME_YES" != 1 ] && [ -f "$MANIFEST" ]; then
      # Exactly what will go, before the question.
      DRY_RUN=1 LISTING=1
      uninstall
      DRY_RUN=0 LISTING=0
      [ -t 0 ] || no_terminal
      ask "Undo these $CHANGES changes?" || die "stopped; nothing changed"
      CHANGES=0
    fi
    uninstall
    [ "$DRY_RUN" != 1 ] || say "dry run: nothing was changed"
    return 0
  fi

  if [ "$DRY_RUN" != 1 ] && [ "$ASSUME_YES" != 1 ]; then
    DRY_RUN=1
    install_all
    DRY_RUN=0
    if [ "$CHANGES" = 0 ]; then
      say "Nothing to change: this server is set up."
    elif [ ! -t 0 ]; then
      no_terminal
    else
      ask "Make these $CHANGES changes?" || die "stopped; nothing changed"
    fi
  fi
  install_all

  if [ "$DRY_RUN" = 1 ]; then
    say "dry run: $CHANGES change(s) listed above; nothing was changed"
  elif [ "$CHANGES" = 0 ]; then
    say "Nothing changed: this server was already set up."
  else
    say "$CHANGES change(s) made; $MANIFEST records them for --uninstall."
  fi

  local pub="(the public key of $KEY, once it exists)"
  if [ -f "$KEY.pub" ]; then
    pub=$(read_pubkey "$KEY.pub")
  fi
  cat <<EOF

On the laptop, authorize this server's key (add --from with this server's address to pin it):
  install/laptop.sh --pubkey '$pub'

Check the connection, then watch it from cron:
  $PREFIX/paliadin-cli health
  */5 * * * * $PREFIX/paliadin-cli health >/dev/null || logger -t paliadin "\$($PREFIX/paliadin-cli health)"
EOF
}

main
