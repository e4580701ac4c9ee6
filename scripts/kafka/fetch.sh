#!/usr/bin/env bash
# Fetches the Apache Kafka broker jars pinned in pom.xml into .cache/kafka/<version>/libs
# and prints that directory on stdout (Maven's own output goes to stderr).
#
# Idempotent: does nothing when the kafka_2.13 jar is already there. Maven writes into a
# temporary sibling directory that is renamed into place only after a complete copy, so an
# interrupted fetch never leaves a half-filled libs directory behind.
set -euo pipefail

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd -- "$script_dir/../.." && pwd)"
pom="$script_dir/pom.xml"

# pom.xml is the single source of truth for the version; local-kafka.ts reads it the same way.
kafka_version="$(sed -n 's:.*<kafka\.version>[[:space:]]*\([^<[:space:]]*\)[[:space:]]*</kafka\.version>.*:\1:p' "$pom" | head -n 1)"
if [[ -z "$kafka_version" ]]; then
  echo "fetch.sh: could not read <kafka.version> from $pom" >&2
  exit 1
fi

version_dir="$repo_root/.cache/kafka/$kafka_version"
libs_dir="$version_dir/libs"
broker_jar="kafka_2.13-$kafka_version.jar"

if [[ ! -f "$libs_dir/$broker_jar" ]]; then
  command -v mvn >/dev/null || { echo "fetch.sh: mvn is not on PATH" >&2; exit 1; }
  mkdir -p "$version_dir"
  staging_dir="$(mktemp -d "$version_dir/libs.partial.XXXXXX")"
  mvn_pid=""
  # Maven must not outlive an interrupted fetch: it would keep writing into the staging dir.
  cleanup() {
    if [[ -n "$mvn_pid" ]]; then kill "$mvn_pid" 2>/dev/null || true; wait "$mvn_pid" 2>/dev/null || true; fi
    rm -rf -- "$staging_dir"
  }
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP

  echo "fetch.sh: fetching Kafka $kafka_version jars with Maven into $libs_dir" >&2
  mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DoutputDirectory="$staging_dir" >&2 &
  mvn_pid=$!
  wait "$mvn_pid"
  mvn_pid=""

  if [[ ! -f "$staging_dir/$broker_jar" ]]; then
    echo "fetch.sh: Maven finished but $broker_jar is missing from its output" >&2
    exit 1
  fi

  # A libs dir without the broker jar is debris from an older, non-atomic fetch.
  if [[ -d "$libs_dir" && ! -f "$libs_dir/$broker_jar" ]]; then
    rm -rf -- "$libs_dir"
  fi
  # rename(2) of a directory is atomic. If a concurrent fetch finished first, its complete
  # copy is as good as ours and the trap discards ours.
  if [[ ! -e "$libs_dir" ]]; then
    mv -- "$staging_dir" "$libs_dir"
  fi
fi

echo "$libs_dir"
