#!/bin/sh
# test_install.sh -- `make install` / `make uninstall` into a temporary
# DESTDIR, `systemd-analyze verify` and `security` on the installed unit, and
# the man page. Run from the top of the tree (make test-service does).
# Nothing outside the temporary directories is touched. Prints one line per
# check and "N passed, M failed" at the end; exits 1 if any check failed.
set -eu

MAKE=${MAKE:-make}
PASSED=0
FAILED=0
WORK=$(mktemp -d /tmp/chat-bridge-install.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM

pass() { PASSED=$((PASSED + 1)); echo "ok    $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL  $1"; }

# check DESCRIPTION COMMAND...: one assertion.
check() {
    desc=$1
    shift
    if "$@"; then pass "$desc"; else fail "$desc"; fi
}

# The unit directory the Makefile uses.
unit_dir() {
    pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system
}

# make_in DESTDIR PREFIX TARGET: run one target quietly, output in $WORK/make.out.
make_in() {
    "$MAKE" --no-print-directory -s "$3" DESTDIR="$1" PREFIX="$2" >"$WORK/make.out" 2>&1
}

# make_default DESTDIR TARGET: the same with the default PREFIX.
make_default() {
    "$MAKE" --no-print-directory -s "$2" DESTDIR="$1" >"$WORK/make.out" 2>&1
}

# The regular files and symlinks under a directory, relative, sorted.
files_under() {
    (cd "$1" && find . ! -type d | sed 's|^\./||' | sort)
}

# same_lines FILE EXPECTED...: FILE holds exactly the EXPECTED lines.
same_lines() {
    file=$1
    shift
    printf '%s\n' "$@" | sort | diff -u - "$file"
}

mode_of() { stat -c %a "$1"; }

# installed_as SOURCE FILE MODE: FILE is a copy of SOURCE with that mode.
installed_as() {
    [ "$(mode_of "$2")" = "$3" ] && cmp -s "$1" "$2"
}

# ==================== (a) install / uninstall ====================

# The four files, with their modes and contents, and nothing else.
test_layout() {
    d=$1 p=$2 u=$(unit_dir)
    u=${u#/}
    files_under "$d" >"$WORK/files"
    check "install lays out exactly 4 files" same_lines "$WORK/files" \
        "${p#/}/sbin/chat-bridge" "${p#/}/share/man/man8/chat-bridge.8" \
        "$u/chat-bridge.service" "etc/chat-bridge/chat-bridge.yaml"
    check "binary is build/chat-bridge, mode 755" \
        installed_as build/chat-bridge "$d$p/sbin/chat-bridge" 755
    check "man page installed, mode 644" \
        installed_as bridge/chat-bridge.8 "$d$p/share/man/man8/chat-bridge.8" 644
    check "config installed, mode 644" \
        installed_as config/chat-bridge.yaml "$d/etc/chat-bridge/chat-bridge.yaml" 644
    check "unit mode 644" test "$(mode_of "$d/$u/chat-bridge.service")" = 644
}

# ExecStartPre= and ExecStart= name the installed binary, nothing else changed.
test_unit_paths() {
    unit=$1 sbin=$2
    check "ExecStart= is $sbin/chat-bridge" \
        grep -qx "ExecStart=$sbin/chat-bridge -c /etc/chat-bridge/chat-bridge.yaml" "$unit"
    check "ExecStartPre= checks the config with $sbin/chat-bridge" \
        grep -qx "ExecStartPre=$sbin/chat-bridge --check-config -c /etc/chat-bridge/chat-bridge.yaml" "$unit"
    sed "s|$sbin/chat-bridge|/usr/local/sbin/chat-bridge|g" "$unit" >"$WORK/unit.back"
    check "unit otherwise identical to systemd/chat-bridge.service" \
        cmp -s systemd/chat-bridge.service "$WORK/unit.back"
}

test_install_prefix() {
    d="$WORK/destdir" p=/opt/chat-bridge-test
    if ! make_in "$d" "$p" install; then
        cat "$WORK/make.out"
        fail "make install DESTDIR=$d PREFIX=$p"
        return 0
    fi
    pass "make install DESTDIR=$d PREFIX=$p"
    test_layout "$d" "$p"
    test_unit_paths "$d$(unit_dir)/chat-bridge.service" "$p/sbin"
}

test_install_default_prefix() {
    d="$WORK/default"
    check "make install DESTDIR=$d (default PREFIX)" make_default "$d" install
    test_layout "$d" /usr/local
    test_unit_paths "$d$(unit_dir)/chat-bridge.service" /usr/local/sbin
}

# A changed config survives a second install and an uninstall; the shipped
# one goes beside it as .dist; everything else is removed.
test_config_kept() {
    d="$WORK/destdir" p=/opt/chat-bridge-test conf="$WORK/destdir/etc/chat-bridge"
    printf 'log:\n  level: debug\n' >"$conf/chat-bridge.yaml"
    check "second make install succeeds" make_in "$d" "$p" install
    check "second install says the config was kept" grep -q "kept" "$WORK/make.out"
    check "changed config not overwritten" \
        grep -qx "  level: debug" "$conf/chat-bridge.yaml"
    check "shipped config installed as chat-bridge.yaml.dist" \
        cmp -s config/chat-bridge.yaml "$conf/chat-bridge.yaml.dist"
    check "make uninstall succeeds" make_in "$d" "$p" uninstall
    files_under "$d" >"$WORK/files"
    check "uninstall leaves only the changed config" same_lines "$WORK/files" \
        "etc/chat-bridge/chat-bridge.yaml"
    cp config/chat-bridge.yaml "$conf/chat-bridge.yaml"
    check "uninstall with the shipped config succeeds" make_in "$d" "$p" uninstall
    check "an unchanged config is removed, and its directory" test ! -e "$conf"
}

test_uninstall_default_prefix() {
    d="$WORK/default"
    check "make uninstall DESTDIR=$d (default PREFIX)" make_default "$d" uninstall
    files_under "$d" >"$WORK/files"
    check "make uninstall DESTDIR only removes every file" test ! -s "$WORK/files"
}

# ==================== (b) systemd-analyze ====================

# verify on the installed unit. systemd-analyze checks that ExecStart='s
# binary exists on this machine and that man:chat-bridge(8) resolves, so the
# installed PREFIX is reached through a symlink from the path the unit names
# and MANPATH points at the installed man page.
test_verify() {
    if ! systemd-analyze --version >/dev/null 2>&1; then
        echo "SKIP  systemd-analyze verify: systemd-analyze cannot run (install the systemd package)"
        return 0
    fi
    d="$WORK/verify" p="$WORK/prefix"
    check "make install for verify" make_in "$d" "$p" install
    mkdir -p "$p"
    ln -s "$d$p/sbin" "$p/sbin"
    unit="$d$(unit_dir)/chat-bridge.service"
    status=0
    MANPATH="$d$p/share/man" systemd-analyze verify "$unit" >"$WORK/verify.out" 2>&1 || status=$?
    cat "$WORK/verify.out"
    check "systemd-analyze verify exits 0" test "$status" = 0
    check "systemd-analyze verify prints no warning" test ! -s "$WORK/verify.out"
    test_security "$unit"
}

# Rated OK or better: PERFECT, SAFE or OK (not MEDIUM, EXPOSED, UNSAFE).
test_security() {
    systemd-analyze security --offline=yes --no-pager "$1" >"$WORK/security.out" 2>&1 || true
    grep 'Overall exposure level' "$WORK/security.out" || cat "$WORK/security.out"
    check "systemd-analyze security rates the unit OK or better" \
        grep -Eq 'Overall exposure level for .*: [0-9.]+ (PERFECT|SAFE|OK)' "$WORK/security.out"
}

# ==================== the man page ====================

test_man_page() {
    if ! command -v groff >/dev/null 2>&1; then
        fail "groff is not installed (package groff-base)"
        return 0
    fi
    groff -man -Tutf8 -ww -z bridge/chat-bridge.8 >"$WORK/groff.out" 2>&1 || true
    cat "$WORK/groff.out"
    check "groff -man -ww reports no warning" test ! -s "$WORK/groff.out"
    groff -man -Tascii -P-cbou bridge/chat-bridge.8 >"$WORK/man.txt" 2>/dev/null
    for s in NAME SYNOPSIS DESCRIPTION OPTIONS FILES SIGNALS ENVIRONMENT "EXIT STATUS" "SEE ALSO"; do
        check "man page has section $s" grep -qx "$s" "$WORK/man.txt"
    done
    build/chat-bridge --help >"$WORK/help.out" 2>&1 || true
    grep -Eo -- '--[a-z][a-z-]+' "$WORK/help.out" | sort -u >"$WORK/options"
    check "--help lists long options" test -s "$WORK/options"
    while read -r opt; do
        check "man page documents $opt" grep -q -- "$opt" "$WORK/man.txt"
    done <"$WORK/options"
}

main() {
    if [ ! -x build/chat-bridge ]; then
        echo "build/chat-bridge missing: run from the top of the tree after make" >&2
        exit 2
    fi
    test_install_prefix
    test_config_kept
    test_install_default_prefix
    test_uninstall_default_prefix
    test_verify
    test_man_page
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ]
}

main
