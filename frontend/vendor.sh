#!/usr/bin/env bash
# Vendors the viewer's and the dashboard's prebuilt browser bundles from the npm registry into
# frontend/static/vendor/<package>/ and records version, source, licence and SHA-256 in
# frontend/static/vendor/MANIFEST.json. Needs npm only when re-vendoring; the app never does.
set -euo pipefail
cd "$(dirname "$0")"
dest=static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# package@version  file-in-package ...
specs=(
  "hammerjs@2.0.8 hammer.min.js LICENSE.md"
  "dicom-parser@1.8.21 dist/dicomParser.min.js LICENSE"
  "cornerstone-core@2.6.1 dist/cornerstone.min.js LICENSE"
  "cornerstone-math@0.1.10 dist/cornerstoneMath.min.js LICENSE"
  "cornerstone-tools@6.0.10 dist/cornerstoneTools.min.js LICENSE"
  "cornerstone-wado-image-loader@4.13.2 dist/cornerstoneWADOImageLoaderNoWebWorkers.bundle.min.js LICENSE"
  "plotly.js-dist-min@4.1.2 plotly.min.js LICENSE"
)
echo "[" > "$tmp/manifest"
first=1
for spec in "${specs[@]}"; do
  read -r package files <<<"$spec"
  name=${package%@*}
  (cd "$tmp" && npm pack --silent "$package" >/dev/null)
  mkdir -p "$dest/$name" "$tmp/$name"
  tar -xzf "$tmp/${name}-${package#*@}.tgz" -C "$tmp/$name"
  for file in $files; do
    cp "$tmp/$name/package/$file" "$dest/$name/$(basename "$file")"
    [ $first = 1 ] || echo "," >> "$tmp/manifest"
    first=0
    printf '  {"package": "%s", "version": "%s", "file": "%s", "source": "%s", "licence": "%s", "sha256": "%s"}' \
      "$name" "${package#*@}" "$name/$(basename "$file")" "$(npm view "$package" dist.tarball)" \
      "$(npm view "$package" license)" "$(sha256sum "$dest/$name/$(basename "$file")" | cut -d' ' -f1)" >> "$tmp/manifest"
  done
done
printf '\n]\n' >> "$tmp/manifest"
cp "$tmp/manifest" "$dest/MANIFEST.json"
echo "vendored ${#specs[@]} packages into $dest"
