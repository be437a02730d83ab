# shellcheck shell=bash
# Shared functions of install/laptop.sh and install/server.sh. Sourced, never
# run. Every change server.sh makes goes through one of these functions, so
# that --dry-run changes nothing and every change is recorded in the
# manifest that --uninstall reads (laptop.sh only checks its options and
# finds the binary here: its changes are `paliadin-shim setup`'s, in the
# same manifest format).
#
# Written for bash 3.2 too (macOS laptops): no mapfile, no associative
# arrays, no empty "${array[@]}" under set -u.

# Set by the caller before use.
PROG=${PROG:-paliadin-install}
DRY_RUN=${DRY_RUN:-0}
MANIFEST=${MANIFEST:-}

# How many changes this run made (or would make).
CHANGES=0
# The manifest as it was, and the entries this run adds (one per line).
OLD_MANIFEST=""
NEW_MANIFEST=""
# Directories a dry run pretends to have created.
DRY_DIRS=""

TAB=$(printf '\t')

say() { printf '%s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}
# need_arg OPTION [VALUE...]: an option's value is there.
need_arg() { [ $# -ge 2 ] || die "$1 needs a value (see --help)"; }
# xdg VALUE FALLBACK: an XDG base directory, VALUE if absolute, else $HOME/FALLBACK.
xdg() {
  case ${1:-} in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$HOME/$2" ;;
  esac
}

# change MESSAGE: one change, done now (or only told, in a dry run).
change() {
  CHANGES=$((CHANGES + 1))
  if [ "$DRY_RUN" = 1 ]; then
    say "would: $*"
  else
    say "done: $*"
  fi
}

unchanged() { say "ok: $*"; }

# The permission bits of PATH in octal (GNU stat, else BSD stat).
mode_of() {
  stat -L -c '%a' "$1" 2>/dev/null || stat -L -f '%Lp' "$1"
}

# ~/x -> $HOME/x; relative -> absolute against the current directory.
abspath() {
  local tilde="~"
  case $1 in
    "$tilde") printf '%s\n' "$HOME" ;;
    "$tilde"/*) printf '%s/%s\n' "$HOME" "${1#"$tilde"/}" ;;
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$(pwd -P)" "$1" ;;
  esac
}

# A TOML basic string holding $1.
toml_str() {
  local s=$1
  case $s in
    *[[:cntrl:]]*) die "control characters are not allowed in a value: $s" ;;
  esac
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

# --- manifest -------------------------------------------------------------

manifest_load() {
  if [ -f "$MANIFEST" ]; then
    OLD_MANIFEST=$(cat "$MANIFEST")
  fi
}

# manifest_has LINE: whether the manifest (old or new) holds LINE exactly.
manifest_has() {
  printf '%s\n%s\n' "$OLD_MANIFEST" "$NEW_MANIFEST" | grep -qxF -- "$1"
}

# record FIELD...: adds one tab-separated entry unless it is there already.
record() {
  local line=$1
  shift
  local f
  for f in "$@"; do
    line="$line$TAB$f"
  done
  if ! manifest_has "$line"; then
    NEW_MANIFEST="$NEW_MANIFEST$line
"
  fi
}

# Writes the manifest if this run added entries to it.
manifest_save() {
  [ -n "$NEW_MANIFEST" ] || return 0
  [ "$DRY_RUN" = 1 ] && return 0
  ensure_dir "$(dirname "$MANIFEST")" 700
  local text
  if [ -n "$OLD_MANIFEST" ]; then
    text="$OLD_MANIFEST
$NEW_MANIFEST"
  else
    text=$NEW_MANIFEST
  fi
  printf '%s' "$text" | write_atomic "$MANIFEST" 600
  OLD_MANIFEST=$(cat "$MANIFEST")
  NEW_MANIFEST=""
}

# The manifest's entries, last first (the order in which to undo them).
manifest_reversed() {
  [ -f "$MANIFEST" ] || return 0
  awk '{ line[NR] = $0 } END { for (i = NR; i > 0; i--) print line[i] }' "$MANIFEST"
}

# --- files and directories -------------------------------------------------

# write_atomic PATH MODE: stdin to PATH through a temp file in the same
# directory, fsynced where possible, then renamed over PATH.
write_atomic() {
  local dest=$1 mode=$2 tmp
  # A symlink (authorized_keys from dotfiles, say) stays a symlink: the
  # file it points to is the one rewritten.
  if [ -L "$dest" ]; then
    dest=$(readlink -f "$dest") || die "cannot resolve the symlink $1"
  fi
  tmp=$(mktemp "$(dirname "$dest")/.$(basename "$dest").XXXXXX") || die "cannot write $dest"
  if ! cat >"$tmp"; then
    rm -f "$tmp"
    die "cannot write $dest"
  fi
  chmod "$mode" "$tmp"
  sync "$tmp" 2>/dev/null || true
  mv -f "$tmp" "$dest"
}

# ensure_dir DIR MODE: creates DIR (and its missing parents, 0755) and
# records each directory it created.
ensure_dir() {
  local dir=$1 mode=$2
  [ -d "$dir" ] && return 0
  if [ "$DRY_RUN" = 1 ]; then
    case "$DRY_DIRS" in *"<$dir>"*) return 0 ;; esac
  fi
  local parent
  parent=$(dirname "$dir")
  [ "$parent" = "$dir" ] || ensure_dir "$parent" 755
  change "create directory $dir (mode $mode)"
  if [ "$DRY_RUN" = 1 ]; then
    DRY_DIRS="$DRY_DIRS<$dir>"
  else
    mkdir -m "$mode" "$dir" || die "cannot create $dir"
  fi
  record dir "$dir"
}

# install_file SRC DEST MODE KIND WHAT: puts SRC's content at DEST with MODE,
# replacing DEST only if its content differs; records KIND DEST.
install_file() {
  local src=$1 dest=$2 mode=$3 kind=$4 what=$5
  ensure_dir "$(dirname "$dest")" 755
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    if [ "$(mode_of "$dest")" != "$mode" ]; then
      change "set mode $mode on $dest"
      [ "$DRY_RUN" = 1 ] || chmod "$mode" "$dest"
    else
      unchanged "$what $dest is up to date"
    fi
  else
    if [ -e "$dest" ]; then
      change "replace $what $dest"
    else
      change "install $what $dest (mode $mode)"
    fi
    [ "$DRY_RUN" = 1 ] || write_atomic "$dest" "$mode" <"$src"
  fi
  record "$kind" "$dest"
}

# remove_dir DIR: removes DIR if it is empty, else says why it stays.
remove_dir() {
  local dir=$1
  [ -d "$dir" ] || return 0
  if [ "$DRY_RUN" = 1 ]; then
    say "would: remove directory $dir if it is empty then"
    return 0
  fi
  if [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
    say "kept: $dir (not empty)"
    return 0
  fi
  change "remove directory $dir"
  [ "$DRY_RUN" = 1 ] || rmdir "$dir"
}

# remove_file PATH WHAT
remove_file() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  change "remove $2 $1"
  [ "$DRY_RUN" = 1 ] || rm -f "$1"
}

# The path of a built binary NAME: the repository's release build, else its
# debug build, else NAME on PATH.
find_built() {
  local name=$1 root=$2 p
  for p in "$root/target/release/$name" "$root/target/debug/$name"; do
    if [ -x "$p" ]; then
      printf '%s\n' "$p"
      return 0
    fi
  done
  command -v "$name" 2>/dev/null
}

# ask QUESTION: yes when --yes was given; no question without a terminal.
ask() {
  [ "${ASSUME_YES:-0}" = 1 ] && return 0
  [ -t 0 ] || return 0
  local answer
  printf '%s [y/N] ' "$1" >&2
  read -r answer || return 1
  case $answer in [yY] | [yY][eE][sS]) return 0 ;; esac
  return 1
}

# The public key's type and blob from one line of text ("" if it has none).
key_type_blob() {
  awk '{
    for (i = 1; i < NF; i++)
      if ($i ~ /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)$/ && $(i + 1) ~ /^AAAA[A-Za-z0-9+\/=]+$/) {
        print $i " " $(i + 1)
        exit
      }
  }'
}

# The first key line of FILE or the text itself: "type blob[ comment]".
read_pubkey() {
  local arg=$1 text
  if [ -f "$arg" ]; then
    text=$(grep -v '^[[:space:]]*#' "$arg" | grep -m1 . || true)
  else
    text=$arg
  fi
  printf '%s\n' "$text" | head -n 1
}

# append_line FILE LINE KIND: appends LINE to FILE (created 0600 if missing,
# mode kept otherwise) and records it as KIND. A last line without its
# newline gets one first, and the manifest says so, so that remove_line can
# give the file back byte for byte.
append_line() {
  local file=$1 line=$2 kind=$3
  if [ ! -e "$file" ]; then
    change "create $file (mode 600)"
    record "$kind-file" "$file"
  fi
  change "add to $file: $line"
  if [ -s "$file" ] && [ -n "$(tail -c 1 "$file")" ]; then
    record "$kind-newline" "$file"
  fi
  record "$kind" "$file" "$line"
  [ "$DRY_RUN" = 1 ] && return 0
  if [ -e "$file" ]; then
    local m
    m=$(mode_of "$file")
    {
      cat "$file"
      [ ! -s "$file" ] || [ -z "$(tail -c 1 "$file")" ] || printf '\n'
      printf '%s\n' "$line"
    } | write_atomic "$file" "$m"
  else
    printf '%s\n' "$line" | write_atomic "$file" 600
  fi
}

# remove_line FILE LINE KIND: undoes append_line (every copy of LINE goes;
# the file goes too if append_line created it and nothing else is left).
remove_line() {
  local file=$1 line=$2 kind=$3
  [ -f "$file" ] || return 0
  if grep -qxF -- "$line" "$file"; then
    change "remove from $file: $line"
    if [ "$DRY_RUN" != 1 ]; then
      local m strip=0
      m=$(mode_of "$file")
      if manifest_has "$kind-newline$TAB$file" && [ "$(tail -n 1 "$file")" = "$line" ]; then
        strip=1
      fi
      { grep -vxF -- "$line" "$file" || true; } |
        awk -v strip="$strip" '
          NR > 1 { print prev }
          { prev = $0; n = NR }
          END { if (n) { if (strip) printf "%s", prev; else print prev } }
        ' | write_atomic "$file" "$m"
    fi
  fi
  if manifest_has "$kind-file$TAB$file"; then
    if [ "$DRY_RUN" = 1 ]; then
      say "would: remove $file if nothing is left in it then"
    elif [ ! -s "$file" ]; then
      remove_file "$file" "the empty file"
    fi
  fi
}
