#!/bin/sh
# Install what book/check_browser.py needs from Debian when it is missing: Chromium, and a CJK font so
# that the quoted (Chinese) questions render in screenshots. Silent unless something fails.
packages="chromium fonts-wqy-zenhei"
missing=""
for p in $packages; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
log=$(mktemp)
if $SUDO apt-get update >"$log" 2>&1 &&
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing >>"$log" 2>&1; then
    rm -f "$log"
    exit 0
fi
cat "$log" >&2
rm -f "$log"
exit 1
