#!/usr/bin/env bash
# Static validation of the Kubernetes manifests, with no API server: yamllint,
# then check_manifests.py (API schema through Debian's python3-kubernetes
# when installed, and the facts fleet relies on), then, when kubectl is
# installed, that kustomize renders the kustomization offline. Exits 77
# (ctest: skipped) when yamllint or PyYAML is missing; deploy/install-deps.sh
# installs both.
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)

if ! command -v yamllint >/dev/null 2>&1; then
  echo "validate: skipped: yamllint is not installed (Debian: yamllint)" >&2
  exit 77
fi
# Debian's python3-yaml and python3-kubernetes live in the system Python,
# which an activated virtualenv or pyenv would hide.
python=python3
if [[ -x /usr/bin/python3 ]]; then python=/usr/bin/python3; fi
if ! "$python" -c 'import yaml' 2>/dev/null; then
  echo "validate: skipped: $python has no yaml module (Debian: python3-yaml)" >&2
  exit 77
fi

yamllint --strict -c "$dir/.yamllint" "$dir"
"$python" "$dir/check_manifests.py" "$dir"
if command -v kubectl >/dev/null 2>&1; then
  # `kubectl kustomize` needs no cluster (dry-run and server-side validation do).
  kubectl kustomize "$dir" >/dev/null
  echo "validate: kubectl kustomize renders $dir"
else
  echo "validate: kubectl not installed: the kustomize render was not checked"
fi
echo "validate: ok"
