#!/usr/bin/env bash
# Make sure a headless-capable Chromium is on PATH for the report rendering tests
# (tests/reports/test_browser.py). Installs Debian's `chromium` package with apt-get
# when it is missing and we are allowed to (root, or passwordless sudo).
# Never fails the caller: prints what it did, and the tests skip with a reason
# when no browser can be found.
set -u

find_browser() {
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

if path=$(find_browser); then
    echo "ensure_chromium: found $path"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: no chromium and no apt-get; report browser tests will be skipped" >&2
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "ensure_chromium: chromium missing and no root/sudo to install it; run 'apt-get install -y chromium' as root" >&2
    exit 0
fi

echo "ensure_chromium: installing Debian's chromium with apt-get (may take a minute)"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; then
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    $SUDO apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || true
fi

if path=$(find_browser); then
    echo "ensure_chromium: installed $path"
else
    echo "ensure_chromium: could not install chromium; report browser tests will be skipped" >&2
fi
exit 0
