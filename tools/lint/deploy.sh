#!/usr/bin/env bash
# Checks of the deployment artefacts (docker/, k8s/, terraform/), run by `make lint`.
# Tools come from `make deps`: yamllint and kubectl (Debian: yamllint, kubernetes-client, unless
# a kubectl is already installed) and the npm packages of tools/lint/package.json
# (tools/lint/node_modules, from the lockfile).
#   1. yamllint on every YAML file (.yamllint)
#   2. kubectl kustomize builds each overlay of k8s/overlays/ (and the base)
#   3. every rendered object validates against the Kubernetes API schema of its kind, plus
#      Taina's rules (k8s-validate.mjs)
#   4. every .tf file parses; variables typed and described; no literal secrets (tf-check.mjs)
#   5. every Dockerfile's final stage runs as a non-root USER
#   6. docker/compose.yml creates the topics of schemas/topics.json with their partitions
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
lint=tools/lint
out=${BUILD:-build}/lint
mkdir -p "$out"
fail=0
bad() { echo "deploy lint: $*" >&2; fail=1; }

for tool in yamllint kubectl node; do
    command -v "$tool" >/dev/null || { echo "deploy lint: $tool not found: run make deps" >&2; exit 1; }
done
[[ -d $lint/node_modules/kubernetes-models ]] || { echo "deploy lint: $lint/node_modules missing: run make deps" >&2; exit 1; }

echo "yamllint"
mapfile -t yamls < <(git ls-files -co --exclude-standard '*.yml' '*.yaml' '.yamllint' 2>/dev/null | grep -v node_modules/ || true)
((${#yamls[@]})) || mapfile -t yamls < <(find . -name build -prune -o -name node_modules -prune -o \( -name '*.yml' -o -name '*.yaml' \) -print)
yamllint -s -c .yamllint "${yamls[@]}" || bad "yamllint"

echo "kustomize + Kubernetes schemas"
rendered=()
for dir in k8s/base k8s/overlays/*/; do
    dir=${dir%/}
    name=$(basename "$dir")
    [[ $dir == k8s/base ]] && name=base
    # kubectl 1.20 (Debian) embeds kustomize 2.0.3, newer ones kustomize 5, which warns that
    # `bases` and `patchesStrategicMerge` are deprecated: the layout works with both.
    if kubectl kustomize "$dir" >"$out/k8s-$name.yaml" 2>"$out/k8s-$name.err"; then
        grep -v "^# Warning: '.*' is deprecated" "$out/k8s-$name.err" >&2 || true
        rendered+=("$out/k8s-$name.yaml")
    else
        cat "$out/k8s-$name.err" >&2
        bad "kubectl kustomize $dir failed"
    fi
done
((${#rendered[@]})) && { node "$lint/k8s-validate.mjs" "${rendered[@]}" || bad "Kubernetes objects"; }

echo "terraform"
node "$lint/tf-check.mjs" terraform || bad "terraform"

echo "Dockerfiles run as non-root"
mapfile -t dockerfiles < <(find docker -name 'Dockerfile*' ! -name '*.dockerignore' | sort)
((${#dockerfiles[@]})) || bad "no Dockerfile under docker/"
for f in "${dockerfiles[@]}"; do
    # the USER in force in the last stage (after its FROM)
    user=$(awk 'toupper($1) == "FROM" { u = "" } toupper($1) == "USER" { u = $2 } END { print u }' "$f")
    case "$user" in
    "") bad "$f: the final stage has no USER (it would run as root)" ;;
    root | root:* | 0 | 0:*) bad "$f: the final stage runs as root (USER $user)" ;;
    *) echo "  $f: USER $user" ;;
    esac
done

echo "compose topics = schemas/topics.json"
python3 - docker/compose.yml schemas/topics.json <<'PY' || bad "docker/compose.yml topics"
import json, re, sys
compose = open(sys.argv[1]).read()
have = {m.group(1): int(m.group(2)) for m in re.finditer(r"([a-z][a-z.]+):(\d+):(?:delete|compact)", compose)}
want = {t["name"]: t["partitions"] for t in json.load(open(sys.argv[2]))["topics"]}
if have != want:
    print("compose creates %s, topics.json has %s" % (sorted(have.items()), sorted(want.items())), file=sys.stderr)
    sys.exit(1)
PY

((fail == 0)) && echo "deploy lint: ok"
exit "$fail"
