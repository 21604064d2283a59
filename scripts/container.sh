#!/usr/bin/env bash
# Builds the container image and runs `thena-sf --version` and `demo --exit`
# in it, with the first container engine that works here (Docker, Podman or
# Buildah). Where none does, says so and skips: a Docker client without an
# engine is not an engine.
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
tag="thena-sf:test-$commit"

engine=""
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  engine=docker
elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then
  engine=podman
elif command -v buildah >/dev/null && buildah info >/dev/null 2>&1; then
  engine=buildah
fi
if [ -z "$engine" ]; then
  echo "container image: skipped, no container engine runs here (docker info, podman info and buildah info all failed or are missing)" >&2
  exit 0
fi
# The base images come from public registries; a machine that cannot reach
# them cannot build the image either (said, and skipped).
for base in $(awk 'toupper($1) == "FROM" { print $2 }' Dockerfile); do
  if ! timeout 300 "$engine" pull -q "$base" >/dev/null 2>/tmp/thena-sf-pull.err; then
    echo "container image: skipped, $engine cannot pull $base here: $(tail -c 300 /tmp/thena-sf-pull.err)" >&2
    exit 0
  fi
done
echo "container image: building $tag with $engine" >&2

run() {
  case "$engine" in
    docker|podman) "$engine" run --rm "$tag" "$@" ;;
    buildah)
      ctr=$(buildah from --pull=never "$tag")
      trap 'buildah rm "$ctr" >/dev/null' RETURN
      buildah run --isolation chroot "$ctr" -- /usr/local/bin/thena-sf "$@" ;;
  esac
}

case "$engine" in
  # chroot isolation: runs inside an unprivileged container too (the OCI
  # runtime needs cgroups such a machine may not delegate).
  buildah) buildah bud --isolation chroot --build-arg "THENA_SF_GIT_COMMIT=$commit" -t "$tag" . ;;
  *) "$engine" build --build-arg "THENA_SF_GIT_COMMIT=$commit" -t "$tag" . ;;
esac
version=$(run --version)
echo "container image: $version" >&2
case "$version" in
  *"(commit $commit)"*) ;;
  *) echo "container image: --version names no commit $commit: $version" >&2; exit 1 ;;
esac
run demo --exit >/dev/null
echo "container image: demo --exit passed inside $tag" >&2
