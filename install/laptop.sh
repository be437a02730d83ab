#!/usr/bin/env bash
# Sets up a laptop for paliadin-shim: the binary, the skill, the shim's
# config, the agent's workdir (trusted in ~/.claude.json) and, given the
# server's public key, the authorized_keys line that forces every call of
# that key into the shim. Idempotent; --dry-run changes nothing; --uninstall
# undoes exactly what the manifest says this script did.
set -euo pipefail

PROG=laptop.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(dirname "$HERE")
# shellcheck source=install/lib.sh
. "$HERE/lib.sh"

MARK_CONFIG="# written by paliadin install/laptop.sh"
MARK_SKILL="<!-- installed by paliadin -->"

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
PREFIX=""
PUBKEY=""
FROM=""
WORKDIR=""
AGENT=""
PERSONA=""
FORCE=0
TMUX_SOCKET=
WAIT_SECS=
UNINSTALL=0
ASSUME_YES=0
while [ $# -gt 0 ]; do
  case $1 in
    --shim-bin) need_arg "$@"; SHIM_BIN=$2; shift ;;
    --prefix) need_arg "$@"; PREFIX=$2; shift ;;
    --pubkey) need_arg "$@"; PUBKEY=$2; shift ;;
    --from) need_arg "$@"; FROM=$2; shift ;;
    --workdir) need_arg "$@"; WORKDIR=$2; shift ;;
    --agent) need_arg "$@"; AGENT=$2; shift ;;
    --tmux-socket) need_arg "$@"; TMUX_SOCKET=$2; shift ;;
    --wait-secs) need_arg "$@"; WAIT_SECS=$2; shift ;;
    --persona) need_arg "$@"; PERSONA=$2; shift ;;
    --force) FORCE=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --yes | -y) ASSUME_YES=1 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
case $WAIT_SECS in
  *[!0-9]*) die "--wait-secs takes a whole number of seconds" ;;
esac
case $TMUX_SOCKET in
  *[!A-Za-z0-9_.-]*) die "--tmux-socket takes a name of letters, digits, '_', '.' and '-'" ;;
esac

[ -n "${HOME:-}" ] || die "HOME is not set"
CONFIG_DIR="$(xdg "${XDG_CONFIG_HOME:-}" .config)/paliadin"
CONFIG="$CONFIG_DIR/shim.toml"
MANIFEST="$CONFIG_DIR/install-laptop.manifest"
STATE_DIR="$(xdg "${XDG_STATE_HOME:-}" .local/state)/paliadin"
SKILL_DIR="$HOME/.claude/skills/paliadin"
SKILL="$SKILL_DIR/SKILL.md"
CLAUDE_JSON="$HOME/.claude.json"
SSH_DIR="$HOME/.ssh"
AUTH_KEYS="$SSH_DIR/authorized_keys"
PREFIX=$(abspath "${PREFIX:-$HOME/.local/bin}")
WORKDIR=$(abspath "${WORKDIR:-$HOME/paliadin-work}")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/paliadin-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# --- ~/.claude.json ---------------------------------------------------------
#
# Claude Code asks "Do you trust the files in this folder?" the first time it
# starts in a directory, and its default answer exits: an unattended pane
# would stop there. The answer is stored in ~/.claude.json under
# projects["<real path>"].hasTrustDialogAccepted. Claude rewrites that file
# often, so it is merged, not replaced: read, change one key, write a temp
# file in the same directory and rename it, keeping its mode and layout.

TRUST_PY='
import json, os, sys, tempfile

mode, path, project = sys.argv[1], sys.argv[2], sys.argv[3]
flags = sys.argv[4] if len(sys.argv) > 4 else ""

def load():
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None, ""
    return json.loads(text, object_pairs_hook=dict) if text.strip() else {}, text

def dump(obj, like):
    indent = None
    stripped = like.lstrip()
    if stripped.startswith("{\n") or like == "":
        rest = stripped[2:]
        indent = len(rest) - len(rest.lstrip(" ")) or 2
    text = json.dumps(obj, indent=indent, ensure_ascii=False,
                      separators=None if indent else (",", ":"))
    if like.endswith("\n") or like == "":
        text += "\n"
    return text

def write(obj, like, existed):
    # A symlinked ~/.claude.json (dotfiles) keeps its link: write its target.
    target = os.path.realpath(path)
    d = os.path.dirname(target) or "."
    st_mode = os.stat(target).st_mode & 0o7777 if existed else 0o600
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".claude.json.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dump(obj, like))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, st_mode)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise

obj, text = load()
existed = obj is not None
if obj is None:
    obj = {}
if not isinstance(obj, dict):
    sys.exit("not a JSON object")
projects = obj.get("projects")
entry = projects.get(project) if isinstance(projects, dict) else None
trusted = isinstance(entry, dict) and entry.get("hasTrustDialogAccepted") is True

if mode == "check":
    print("trusted" if trusted else "untrusted")
elif mode == "add":
    if trusted:
        print("unchanged")
        sys.exit(0)
    if projects is not None and not isinstance(projects, dict):
        sys.exit("projects is not a JSON object")
    if entry is not None and not isinstance(entry, dict):
        sys.exit("the project entry is not a JSON object")
    created = ("file," if not existed else "") + \
        ("projects," if projects is None else "") + \
        ("entry," if entry is None else "")
    if projects is None:
        projects = obj["projects"] = {}
    if entry is None:
        entry = projects[project] = {}
    entry["hasTrustDialogAccepted"] = True
    write(obj, text, existed)
    print("added " + (created.rstrip(",") or "key"))
elif mode == "remove":
    if not existed:
        print("absent")
        sys.exit(0)
    if trusted:
        del entry["hasTrustDialogAccepted"]
        if "entry" in flags.split(",") and not entry:
            del projects[project]
        if "projects" in flags.split(",") and not projects:
            del obj["projects"]
        if "file" in flags.split(",") and not obj:
            os.unlink(path)
            print("removed file")
            sys.exit(0)
        write(obj, text, True)
        print("removed")
    else:
        print("absent")
'

# Whether Claude Code runs now with this HOME (then ~/.claude.json is in
# use): a live process (not a zombie) of this user, named claude (claude.exe
# when started from the npm package's own path), whose HOME is ours. Where
# /proc does not tell a process's HOME (macOS), every live claude of this
# user counts. Exit 2 when nobody can tell.
claude_running() {
  command -v pgrep >/dev/null 2>&1 || return 2
  local pids pid stat home
  pids=$(pgrep -u "$(id -u)" -x 'claude|claude\.exe' 2>/dev/null) || return 1
  for pid in $pids; do
    stat=$(ps -o stat= -p "$pid" 2>/dev/null) || continue
    case $stat in Z* | "") continue ;; esac
    if [ -r "/proc/$pid/environ" ]; then
      home=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^HOME=//p' | head -n 1)
      [ "$home" = "$HOME" ] || continue
    fi
    return 0
  done
  return 1
}

trust_workdir() {
  local project=$1 state
  if ! command -v python3 >/dev/null 2>&1; then
    warn "python3 is not installed: $CLAUDE_JSON was not changed; trust $project by starting claude there once"
    return 0
  fi
  state=$(python3 -c "$TRUST_PY" check "$CLAUDE_JSON" "$project") ||
    die "$CLAUDE_JSON is not valid JSON; fix it, then run this again"
  if [ "$state" = trusted ]; then
    unchanged "$project is trusted in $CLAUDE_JSON"
    return 0
  fi
  local rc=0
  claude_running || rc=$?
  if [ "$rc" != 1 ]; then
    if [ "$rc" = 0 ]; then
      warn "claude is running, so $CLAUDE_JSON is in use: the workdir was NOT marked trusted. Quit every claude, then run this again."
    else
      warn "pgrep is missing, so nobody can tell whether claude is running: the workdir was NOT marked trusted. Quit every claude, then run this again."
    fi
    return 0
  fi
  change "mark $project trusted in $CLAUDE_JSON"
  [ "$DRY_RUN" = 1 ] && return 0
  local out flags
  out=$(python3 -c "$TRUST_PY" add "$CLAUDE_JSON" "$project") || die "cannot update $CLAUDE_JSON"
  case $out in
    added*)
      flags=${out#added }
      record trust "$CLAUDE_JSON" "$project" "$flags"
      ;;
  esac
}

untrust_workdir() {
  local file=$1 project=$2 flags=$3
  if ! command -v python3 >/dev/null 2>&1; then
    warn "python3 is not installed: the trust entry of $project stays in $file"
    return 1
  fi
  local rc=0
  claude_running || rc=$?
  if [ "$rc" != 1 ]; then
    warn "claude is running (or pgrep is missing), so $file is in use: its trust entry for $project stays. Quit every claude, then run --uninstall again."
    return 1
  fi
  local state
  state=$(python3 -c "$TRUST_PY" check "$file" "$project") || {
    warn "$file is not valid JSON: its trust entry stays"
    return 1
  }
  [ "$state" = trusted ] || return 0
  change "remove the trust entry of $project from $file"
  [ "$DRY_RUN" = 1 ] && return 0
  python3 -c "$TRUST_PY" remove "$file" "$project" "$flags" >/dev/null || {
    warn "cannot update $file"
    return 1
  }
}

# --- uninstall ---------------------------------------------------------------

# The tmux socket the installed config names (the shim's default if none).
configured_socket() {
  local s=""
  if [ -f "$CONFIG" ]; then
    s=$(sed -n 's/^tmux_socket = "\([A-Za-z0-9_.-]*\)"$/\1/p' "$CONFIG" | head -n 1)
  fi
  printf '%s\n' "${s:-paliadin}"
}

# Stops the shim's tmux server on socket $1, and with it every agent in it,
# if it runs and belongs to this state directory (the shim marks the server
# it starts with @paliadin-state); a server of another state is left alone.
stop_shim_server() {
  local socket=$1 owner
  command -v tmux >/dev/null 2>&1 || return 0
  tmux -L "$socket" -f /dev/null list-sessions >/dev/null 2>&1 || return 0
  owner=$(tmux -L "$socket" -f /dev/null show-options -gqv @paliadin-state 2>/dev/null || true)
  if [ -n "$owner" ] && [ "$owner" != "$STATE_DIR" ] && [ "$owner" != "$(realdir "$STATE_DIR" 2>/dev/null)" ]; then
    say "kept: the tmux server $socket (it belongs to the state directory $owner)"
    return 0
  fi
  change "stop the shim's tmux server $socket and the agents in it"
  [ "$DRY_RUN" = 1 ] || tmux -L "$socket" -f /dev/null kill-server 2>/dev/null || true
}

uninstall() {
  if [ ! -f "$MANIFEST" ]; then
    say "nothing to undo: no manifest at $MANIFEST"
    return 0
  fi
  stop_shim_server "$(configured_socket)"
  local kept="" dirs="" line kind a b c
  local entries
  manifest_load
  entries=$(manifest_reversed)
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    kind=${line%%"$TAB"*}
    a=$(printf '%s\n' "$line" | cut -f2)
    b=$(printf '%s\n' "$line" | cut -f3-)
    case $kind in
      bin) remove_file "$a" "the shim binary" ;;
      config | skill)
        if [ -f "$a" ] && ! grep -qxF -- "$([ "$kind" = config ] && echo "$MARK_CONFIG" || echo "$MARK_SKILL")" "$a"; then
          say "kept: $a (no longer marked as written by this installer)"
        else
          remove_file "$a" "the $kind"
        fi
        ;;
      skill-backup)
        if [ -f "$b" ] && [ ! -e "$a" ]; then
          change "restore $a from $b"
          [ "$DRY_RUN" = 1 ] || mv "$b" "$a"
        fi
        ;;
      authline) remove_line "$a" "$b" authline ;;
      authline-file | authline-newline) ;;
      trust)
        c=$(printf '%s\n' "$line" | cut -f4)
        b=$(printf '%s\n' "$line" | cut -f3)
        untrust_workdir "$a" "$b" "$c" || kept="$line
$kept"
        ;;
      dir) dirs="$line
$dirs" ;;
      *) warn "unknown manifest entry: $line" ;;
    esac
  done <<EOF
$entries
EOF
  if [ -n "$kept" ]; then
    if [ "$DRY_RUN" != 1 ]; then
      printf '%s%s' "$dirs" "$kept" | write_atomic "$MANIFEST" 600
    fi
    say "Some entries could not be undone; they stay in $MANIFEST for the next --uninstall."
    return 0
  fi
  remove_file "$MANIFEST" "the manifest"
  # The directories this installer made, newest first, if they are empty now.
  while IFS= read -r line; do
    case $line in "dir$TAB"*) remove_dir "${line#dir"$TAB"}" ;; esac
  done <<EOF
$(printf '%s' "$dirs" | awk '{ l[NR] = $0 } END { for (i = NR; i > 0; i--) print l[i] }')
EOF
  if [ -d "$STATE_DIR" ]; then
    say "left: the state directory $STATE_DIR (the shim's sessions and the replies of the last day); remove it with: rm -rf '$STATE_DIR'"
  fi
}

# --- install -------------------------------------------------------------------

# Sets AGENT_WORDS (the agent's argv, one word per line) and AGENT_NOTE
# (which agent that is).
AGENT_WORDS=""
AGENT_NOTE=""
# The agent's environment, as a TOML inline table (empty: none).
AGENT_ENV=""
agent_argv() {
  if [ -n "$AGENT" ]; then
    AGENT_NOTE="$AGENT (given with --agent)"
    if command -v python3 >/dev/null 2>&1; then
      AGENT_WORDS=$(python3 -c 'import shlex, sys; print("\n".join(shlex.split(sys.argv[1])))' "$AGENT") ||
        die "--agent: unbalanced quotes"
    else
      case $AGENT in *[\"\'\\]*) die "--agent with quotes needs python3 to split it" ;; esac
      AGENT_WORDS=$(printf '%s\n' "$AGENT" | tr -s '[:blank:]' '[\n*]' | grep . || true)
    fi
    [ -n "$AGENT_WORDS" ] || die "--agent is empty"
    return 0
  fi
  local claude
  if claude=$(command -v claude 2>/dev/null) && [ -n "$claude" ]; then
    AGENT_NOTE="Claude Code ($claude), unattended"
    # An unattended pane must never stop on a question (CLAUDE-CODE-NOTES):
    # - dontAsk denies whatever is not allowed below instead of prompting
    #   (bypassPermissions would allow everything, and refuses to run as root);
    # - the model may read the workdir and nothing else. A Read path rule
    #   takes a //absolute path ("//path" is the filesystem root; a single
    #   leading "/" is relative to the settings source), the real path, so
    #   that it matches both a symlink and its target. The reply is the
    #   model's final message, which the shim's Stop hook records: the agent
    #   needs no access at all to the shim's state, so no session can see
    #   another's;
    # - --strict-mcp-config: no MCP server from the workdir's .mcp.json, whose
    #   approval dialog would stop the pane;
    # - AskUserQuestion opens a picker that waits for a person: removed.
    # Its environment:
    # - CLAUDE_CODE_MAX_RETRIES=3: claude retries a failing API call ten
    #   times over about three minutes by default, long past a turn's wait;
    #   with three (about 3.5 s of backoff) a turn whose calls keep failing
    #   ends with the agent's error (76) within the wait, and a blip of a
    #   second or two still passes unseen;
    # - DISABLE_AUTOUPDATER=1: an unattended pane must not update claude
    #   under itself mid-conversation (update it as you always do).
    AGENT_ENV='{ CLAUDE_CODE_MAX_RETRIES = "3", DISABLE_AUTOUPDATER = "1" }'
    AGENT_WORDS=$(printf '%s\n' "$claude" \
      --permission-mode dontAsk \
      --strict-mcp-config \
      --allowedTools "Read(/$WORK_REAL/**)" \
      --disallowedTools AskUserQuestion)
    return 0
  fi
  no_agent
}

# No agent would answer: installing one that cannot start (or a test agent
# in its place) only fails later, on the server, for every turn. Exit 2
# before anything changed.
no_agent() {
  printf '%s: error: %s\n' "$PROG" "claude (Claude Code) is not on PATH. Install it (npm install -g @anthropic-ai/claude-code, then run claude once to log in) and run this again, or give the agent's command line with --agent COMMAND" >&2
  exit 2
}

render_config() {
  local words=$1 first=1 w
  say "$MARK_CONFIG"
  say "# The shim's configuration: paliadin-shim --config $CONFIG"
  say "# Remove the line above to keep install/laptop.sh from rewriting this file."
  say "# Agent: $AGENT_NOTE"
  printf 'agent = ['
  while IFS= read -r w; do
    [ $first = 1 ] || printf ', '
    first=0
    toml_str "$w"
  done <<EOF
$words
EOF
  printf ']\n'
  say "agent_hooks = true"
  if [ -n "$AGENT_ENV" ]; then
    say "agent_env = $AGENT_ENV"
  fi
  printf 'workdir = %s\n' "$(toml_str "$WORK_REAL")"
  printf 'state_dir = %s\n' "$(toml_str "$STATE_REAL")"
  if [ -n "$TMUX_SOCKET" ]; then
    printf 'tmux_socket = %s\n' "$(toml_str "$TMUX_SOCKET")"
  else
    say "# tmux_socket = \"paliadin\""
  fi
  if [ -n "$WAIT_SECS" ]; then
    printf 'wait_secs = %s\n' "$WAIT_SECS"
  else
    say "# wait_secs = 60"
  fi
  say "# ready_timeout_secs = 30"
  say "# max_message_bytes = 65536"
  say "# submit_retry_ms = 2000"
}

install_skill() {
  local src="$ROOT/skills/paliadin/SKILL.md" out="$TMP/SKILL.md"
  [ -f "$src" ] || die "the skill is missing: $src"
  if [ -n "$PERSONA" ]; then
    [ -f "$PERSONA" ] || die "--persona: no such file: $PERSONA"
    if ! grep -qxF '<!-- persona:begin -->' "$src" || ! grep -qxF '<!-- persona:end -->' "$src"; then
      die "the skill has no persona section to replace"
    fi
  fi
  # The marker goes right after the frontmatter, which must stay first.
  awk -v mark="$MARK_SKILL" -v persona="$PERSONA" '
    NR == 1 && $0 == "---" { front = 1; print; next }
    front && $0 == "---" { front = 0; print; print mark; next }
    $0 == "<!-- persona:begin -->" && persona != "" {
      print
      while ((getline line < persona) > 0) print line
      skip = 1
      next
    }
    $0 == "<!-- persona:end -->" { skip = 0 }
    !skip { print }
  ' "$src" >"$out"
  if [ -f "$SKILL" ] && ! grep -qxF -- "$MARK_SKILL" "$SKILL"; then
    if cmp -s "$out" "$SKILL"; then
      :
    elif [ "$FORCE" != 1 ]; then
      warn "$SKILL exists and was not written by this installer: left as is (--force moves it to SKILL.md.orig and installs paliadin's)"
      return 0
    else
      change "move the existing $SKILL to $SKILL.orig"
      if [ "$DRY_RUN" != 1 ]; then
        mv "$SKILL" "$SKILL.orig"
      fi
      record skill-backup "$SKILL" "$SKILL.orig"
    fi
  fi
  ensure_dir "$HOME/.claude" 755
  ensure_dir "$HOME/.claude/skills" 755
  install_file "$out" "$SKILL" 644 skill "the skill"
}

install_config() {
  local out="$TMP/shim.toml"
  agent_argv
  render_config "$AGENT_WORDS" >"$out"
  say "agent: $AGENT_NOTE"
  ensure_dir "$CONFIG_DIR" 700
  if [ -f "$CONFIG" ] && ! grep -qxF -- "$MARK_CONFIG" "$CONFIG"; then
    say "kept: $CONFIG was not written by this installer; it stays as it is (check its agent, workdir and state_dir by hand)"
    return 0
  fi
  install_file "$out" "$CONFIG" 600 config "the shim config"
}

install_authorized_key() {
  local text key blob comment opts line p old replaced=0
  text=$(read_pubkey "$PUBKEY")
  key=$(printf '%s\n' "$text" | key_type_blob)
  [ -n "$key" ] || die "--pubkey: no public key in $PUBKEY (want 'ssh-ed25519 AAAA...' or a .pub file)"
  blob=${key#* }
  comment=$(printf '%s\n' "$text" | awk -v b="$blob" '{ for (i = 1; i <= NF; i++) if ($i == b) { s = ""; for (j = i + 1; j <= NF; j++) s = s (s == "" ? "" : " ") $j; print s; exit } }')
  for p in "$PREFIX/paliadin-shim" "$CONFIG"; do
    plain_path "$p" || die "$p has characters that sshd's command line would need quoted; choose another --prefix or HOME"
  done
  opts="restrict,command=\"$PREFIX/paliadin-shim --config $CONFIG\""
  if [ -n "$FROM" ]; then
    case $FROM in *[\"[:space:]]*) die "--from: no quotes or spaces allowed: $FROM" ;; esac
    opts="from=\"$FROM\",$opts"
  fi
  line="$opts $key${comment:+ $comment}"
  ensure_dir "$SSH_DIR" 700
  # A line of an earlier run with other options (--from, --prefix) is
  # replaced by the new one.
  if [ -f "$AUTH_KEYS" ] && ! grep -qxF -- "$line" "$AUTH_KEYS"; then
    printf '%s\n' "$OLD_MANIFEST" | while IFS= read -r old; do
      case $old in "authline$TAB$AUTH_KEYS$TAB"*) printf '%s\n' "${old#"authline$TAB$AUTH_KEYS$TAB"}" ;; esac
    done >"$TMP/old-lines"
    while IFS= read -r old; do
      case " $old " in
        *" $blob "*)
          if grep -qxF -- "$old" "$AUTH_KEYS"; then
            remove_line "$AUTH_KEYS" "$old" authline
            replaced=1
          fi
          ;;
      esac
    done <"$TMP/old-lines"
  fi
  if [ "$replaced" = 0 ] && [ -f "$AUTH_KEYS" ] && awk -v b="$blob" '{ for (i = 1; i <= NF; i++) if ($i == b) f = 1 } END { exit !f }' "$AUTH_KEYS"; then
    if grep -qxF -- "$line" "$AUTH_KEYS"; then
      # Recorded by the run that added it, if this script added it at all.
      unchanged "the server's key is authorized in $AUTH_KEYS"
    else
      warn "the server's key is already in $AUTH_KEYS on another line: left as is. For paliadin it must read:"
      say "  $line"
    fi
    return 0
  fi
  append_line "$AUTH_KEYS" "$line" authline
}

install_all() {
  if [ -z "$AGENT" ] && ! command -v claude >/dev/null 2>&1; then
    no_agent
  fi
  CHANGES=0
  NEW_MANIFEST=""
  DRY_DIRS=""
  manifest_load

  if [ -z "$SHIM_BIN" ]; then
    SHIM_BIN=$(find_built paliadin-shim "$ROOT") ||
      die "no paliadin-shim found: build it (cargo build --release -p paliadin-shim) or give --shim-bin"
  fi
  SHIM_BIN=$(abspath "$SHIM_BIN")
  if [ ! -f "$SHIM_BIN" ] || [ ! -x "$SHIM_BIN" ]; then
    die "--shim-bin: not an executable file: $SHIM_BIN"
  fi

  ensure_dir "$WORKDIR" 755
  ensure_dir "$STATE_DIR" 700
  WORK_REAL=$(realdir "$WORKDIR")
  STATE_REAL=$(realdir "$STATE_DIR")
  local p
  for p in "$WORK_REAL" "$STATE_REAL"; do
    plain_path "$p" || die "$p has characters a permission rule cannot hold plainly; choose another path"
  done

  install_file "$SHIM_BIN" "$PREFIX/paliadin-shim" 755 bin "the shim binary"
  install_skill
  install_config
  trust_workdir "$WORK_REAL"
  if [ -n "$PUBKEY" ]; then
    install_authorized_key
  else
    say "note: no --pubkey given, so $AUTH_KEYS was not changed"
  fi
  manifest_save
}

# What starting the forced command costs before the shim runs: sshd runs it
# through the user's shell, and Debian's bash then reads ~/.bashrc (it sees
# SSH_CLIENT). Timed the way sshd runs it, against the same shell without
# SSH_CLIENT, median of five; above 20 ms it is worth a guard in the rc file.
check_login_shell() {
  local shell=${SHELL:-/bin/sh} ms
  command -v python3 >/dev/null 2>&1 || return 0
  [ -x "$shell" ] || return 0
  ms=$(python3 -c "$SHELL_COST_PY" "$shell" "$HOME") || return 0
  if [ "$ms" -gt 20 ]; then
    warn "your login shell ($shell) spends $ms ms reading its rc files before every turn (sshd runs the shim through it, and bash reads ~/.bashrc for ssh): each turn costs $ms ms more. Put this at the top of ~/.bashrc to skip the rest when no one types: case \$- in *i*) ;; *) return ;; esac"
  else
    unchanged "your login shell starts the shim in $ms ms"
  fi
}

SHELL_COST_PY='
import os, subprocess, sys, time
shell, home = sys.argv[1], sys.argv[2]
def median(env):
    times = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([shell, "-c", "true"], env=env, cwd=home,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=20)
        times.append(time.perf_counter() - t)
    return sorted(times)[2]
base = {"HOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "USER": os.environ.get("USER", ""), "SHELL": shell}
ssh = dict(base, SSH_CLIENT="127.0.0.1 50000 22",
           SSH_CONNECTION="127.0.0.1 50000 127.0.0.1 22")
print(max(0, round((median(ssh) - median(base)) * 1000)))
'

main() {
  if [ "$DRY_RUN" != 1 ] && [ "$ASSUME_YES" != 1 ] && [ ! -t 0 ]; then
    printf '%s: error: %s\n' "$PROG" "no terminal to ask on: run again with --yes to make the changes, or with --dry-run to see them" >&2
    exit 2
  fi
  if [ "$UNINSTALL" = 1 ]; then
    if [ "$DRY_RUN" != 1 ] && [ "$ASSUME_YES" != 1 ] && [ -t 0 ]; then
      ask "Undo everything install/laptop.sh did (see $MANIFEST)?" || die "stopped; nothing changed"
    fi
    uninstall
    if [ "$DRY_RUN" = 1 ]; then
      say "dry run: nothing was changed"
    fi
    return 0
  fi

  if [ "$DRY_RUN" != 1 ] && [ "$ASSUME_YES" != 1 ] && [ -t 0 ]; then
    DRY_RUN=1
    install_all
    DRY_RUN=0
    if [ "$CHANGES" = 0 ]; then
      say "Nothing to change: this laptop is set up."
      return 0
    fi
    ask "Make these $CHANGES changes?" || die "stopped; nothing changed"
  fi
  install_all

  check_login_shell
  if [ "$DRY_RUN" = 1 ]; then
    say "dry run: $CHANGES change(s) listed above; nothing was changed"
  elif [ "$CHANGES" = 0 ]; then
    say "Nothing changed: this laptop was already set up."
  else
    say "$CHANGES change(s) made; $MANIFEST records them for --uninstall."
  fi
  cat <<EOF

Check it:
  $PREFIX/paliadin-shim --config $CONFIG health <session>    # prints ok once the agent runs
  $PREFIX/paliadin-shim --config $CONFIG attach <session>    # watch the agent's pane (detach: C-b d)
EOF
}

main
