#!/bin/sh
# Makes sure every package has the git tag of its current release (`<name>@<version>`), so that
# `lerna version` sees what changed since then. Tags that exist are left alone; missing ones are
# created at the last release commit: the newest commit whose subject starts with "chore(release):"
# (lerna's release commits, and the baseline commit that started the releases). Tags do not travel
# with a plain clone of a branch: CI and fresh clones get them back this way.
#
#   sh scripts/release-tags.sh            # create the missing tags (local; `git push --tags` shares them)
#   sh scripts/release-tags.sh --print    # only say which tags would be created
set -eu
cd "$(git rev-parse --show-toplevel)"
print_only=${1:-}

if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  echo "release-tags: this clone is shallow: fetch the whole history first (git fetch --unshallow)" >&2
  exit 1
fi
base=$(git log -1 --format=%H --extended-regexp --grep='^chore\(release\):' HEAD)
if [ -z "$base" ]; then
  echo "release-tags: no 'chore(release):' commit in the history: nothing to tag" >&2
  exit 1
fi
echo "release-tags: last release commit $(git log -1 --format='%h %s' "$base")"

for manifest in packages/*/package.json plugins/*/package.json; do
  # the package as it was at the release commit (a package added since has no release yet)
  json=$(git show "$base:$manifest" 2>/dev/null) || continue
  tag=$(printf '%s' "$json" | node -e 'let s="";process.stdin.on("data",(c)=>(s+=c)).on("end",()=>{const p=JSON.parse(s);if(!p.private)console.log(`${p.name}@${p.version}`)})')
  [ -n "$tag" ] || continue
  if git rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
    continue
  fi
  if [ "$print_only" = "--print" ]; then
    echo "would tag $tag"
  else
    git tag -a "$tag" -m "$tag" "$base"
    echo "tagged $tag"
  fi
done
