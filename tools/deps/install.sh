#!/usr/bin/env bash
# Installs the Debian packages listed in tools/deps/packages.txt when some are missing, and the
# npm packages of the deployment lint (tools/lint/package.json).
# As root it runs apt-get (update first); otherwise it prints the exact command to run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t pkgs < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages.txt")

missing=()
for p in "${pkgs[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
# The deployment lint (tools/lint/deploy.sh) needs kubectl and npm: Debian's kubernetes-client
# and npm, unless the machine already has them (another kubectl package owns /usr/bin/kubectl,
# and a Node.js from elsewhere brings its own npm).
command -v kubectl >/dev/null || missing+=(kubernetes-client)
command -v npm >/dev/null || missing+=(npm)

if ((${#missing[@]})); then
    cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
    if [[ $(id -u) -ne 0 ]]; then
        echo "deps: missing Debian packages: ${missing[*]}" >&2
        echo "deps: run as root:  sudo sh -c '$cmd'" >&2
        exit 1
    fi
    echo "deps: installing ${missing[*]}" >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# npm packages of the deployment lint, from tools/lint/package-lock.json into tools/lint/node_modules
# (again only when the lockfile changed). A failure here does not stop the build: make lint says
# what is missing.
lint="$here/../lint"
if ! cmp -s "$lint/package-lock.json" "$lint/node_modules/.taina-lock" 2>/dev/null; then
    echo "deps: npm ci in tools/lint" >&2
    if (cd "$lint" && npm ci --no-audit --no-fund --loglevel=error >&2); then
        cp "$lint/package-lock.json" "$lint/node_modules/.taina-lock"
    else
        echo "deps: npm ci in tools/lint failed: make lint cannot check docker/ k8s/ terraform/" >&2
    fi
fi
