#!/bin/sh
# What `npm run release` would bump, without touching this checkout: clones it into a temp dir,
# restores the release tags there (scripts/release-tags.sh: a fresh clone has none), runs
# `lerna version --no-git-tag-version --no-push --yes` and prints the new versions and changelogs,
# then deletes the clone. Works from a fresh clone of main with no tags (CI). Exit code 0 unless
# something failed; "no changed packages" is a fine answer.
set -eu
root=$(git rev-parse --show-toplevel)
lerna="$root/node_modules/.bin/lerna"
[ -x "$lerna" ] || { echo "release-dry-run: run npm ci first (no $lerna)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tp-release-dry-run.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# committed state only, as a release would see it; no tags, as in CI
git clone --quiet --no-tags "$root" "$tmp/repo"
cd "$tmp/repo"
git -c advice.detachedHead=false checkout --quiet -B release-dry-run "$(git -C "$root" rev-parse HEAD)"
git config user.name 'tp release dry run'
git config user.email 'release-dry-run@localhost'
sh scripts/release-tags.sh >/dev/null
# lerna is run from the original checkout's node_modules: the clone needs no npm ci
ln -s "$root/node_modules" node_modules

"$lerna" version --no-git-tag-version --no-push --yes --allow-branch release-dry-run 2>&1 | grep -v '^lerna \(notice\|info\) \(cli\|ci\|versioning\)' || true

echo
echo "== would bump =="
git diff --name-only -- 'packages/*/package.json' 'plugins/*/package.json' | while read -r manifest; do
  node -e 'const p=require(process.argv[1]);console.log(`${p.name} ${process.argv[2]} -> ${p.version}`)' "$PWD/$manifest" \
    "$(git show "HEAD:$manifest" | node -e 'let s="";process.stdin.on("data",(c)=>(s+=c)).on("end",()=>console.log(JSON.parse(s).version))')"
done
changelogs=$(git ls-files --others --modified -- '*/CHANGELOG.md')
if [ -z "$changelogs" ]; then
  echo "(nothing: no package changed since its last release)"
  exit 0
fi
for changelog in $changelogs; do
  echo
  echo "== $changelog (new part) =="
  if git ls-files --error-unmatch "$changelog" >/dev/null 2>&1; then
    git diff -U0 -- "$changelog" | sed -n 's/^+//p' | grep -v '^++ ' || true
  else
    head -n 40 "$changelog"
  fi
done
