#!/usr/bin/env bash
# Installs the pinned helm into .cache/helm/bin (git-ignored) and prints the path of the
# binary on stdout (go's own output goes to stderr).
#
# Idempotent: does nothing when that binary already exists and reports the pinned version (a
# changed pin rebuilds it). helm is built from source with `go install` through the Go module
# proxy, so no release tarball or checksum list has to be trusted separately: the Go checksum
# database verifies every module. The first build takes a minute or two.
# GO (default: `go` on PATH, else /usr/local/go/bin/go) selects the Go toolchain.
set -euo pipefail

# The one place the helm version is pinned.
helm_version="v3.21.4"

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd -- "$script_dir/../.." && pwd)"
bin_dir="$repo_root/.cache/helm/bin"
helm_bin="$bin_dir/helm"

if [[ -x "$helm_bin" ]] && "$helm_bin" version --template '{{.Version}}' 2>/dev/null | grep -qx -- "$helm_version"; then
  echo "$helm_bin"
  exit 0
fi

go_bin="${GO:-}"
if [[ -z "$go_bin" ]]; then
  if command -v go >/dev/null 2>&1; then go_bin="$(command -v go)"; else go_bin=/usr/local/go/bin/go; fi
fi
if [[ ! -x "$go_bin" ]] && ! command -v "$go_bin" >/dev/null 2>&1; then
  echo "install-helm.sh: no Go toolchain (set GO=/path/to/go); needed to build helm $helm_version" >&2
  exit 1
fi

# Build into a staging directory that is moved into place only when complete, so an interrupted
# build never leaves a half-written binary that the check above would accept.
mkdir -p "$bin_dir"
staging_dir="$(mktemp -d "$bin_dir/../bin.partial.XXXXXX")"
trap 'rm -rf -- "$staging_dir"' EXIT

echo "install-helm.sh: building helm $helm_version with $("$go_bin" version) into $bin_dir" >&2
# Helm's release builds stamp the version through ldflags; `go install` alone would report the
# module version anyway (from the build info), but the ldflag makes `helm version` exact.
GOBIN="$staging_dir" GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0 \
  "$go_bin" install \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" \
  "helm.sh/helm/v3/cmd/helm@$helm_version" >&2
mv -f -- "$staging_dir/helm" "$helm_bin"
"$helm_bin" version --template '{{.Version}}' | grep -qx -- "$helm_version" || {
  echo "install-helm.sh: built helm does not report $helm_version" >&2
  exit 1
}
echo "$helm_bin"
