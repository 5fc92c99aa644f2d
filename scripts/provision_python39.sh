#!/usr/bin/env bash
# Installs Debian bullseye's python3.9 beside the system Python, for machines with no Python 3.8-3.10.
#
# What it does to the machine (root needed):
#   - adds the bullseye suite, pinned at priority 100 so nothing else is ever upgraded from it,
#     reusing the URI of the machine's existing Debian apt source;
#   - installs python3.9 and python3.9-venv from it;
#   - copies the distutils and lib2to3 directories out of bullseye's python3-distutils and
#     python3-lib2to3 packages into /usr/lib/python3.9 (installing those packages would conflict
#     with the system's Python 3.11, so they are only downloaded and unpacked).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "provisioning python3.9 needs root (apt-get); or point KEFU_RASA_PYTHON at a Python 3.8-3.10" >&2
    exit 1
fi

uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
    grep -m1 -oE 'https?://[^ ]+/debian/?' || true)
uri=${uri:-http://deb.debian.org/debian}

cat > /etc/apt/sources.list.d/kefu-bullseye.sources <<EOF
Types: deb
URIs: $uri
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cat > /etc/apt/preferences.d/kefu-bullseye <<EOF
Package: *
Pin: release n=bullseye
Pin-Priority: 100
EOF

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bullseye python3.9 python3.9-venv python3.9-dev

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq -t bullseye python3-distutils python3-lib2to3)
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
for dir in distutils lib2to3; do
    if [ ! -d "/usr/lib/python3.9/$dir" ]; then
        cp -r "$work/root/usr/lib/python3.9/$dir" /usr/lib/python3.9/
    fi
done
python3.9 -c 'import distutils.sysconfig, lib2to3; print("python3.9 ready")'
