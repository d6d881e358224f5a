#!/bin/sh
# Refresh the vendored Leaflet in static/vendor/leaflet from the npm registry (needs npm).
# The built files are committed so that the console works offline from a fresh clone with no
# JavaScript toolchain; run this only to change the version (then update package.json).
set -eu
cd "$(dirname "$0")"
version=$(python3 -c 'import json; print(json.load(open("package.json"))["vendored"]["leaflet"]["version"])')
want=$(python3 -c 'import json; print(json.load(open("package.json"))["vendored"]["leaflet"]["integrity"])')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "leaflet@$version" >/dev/null)
got="sha512-$(openssl dgst -sha512 -binary "$tmp/leaflet-$version.tgz" | base64 -w0)"
[ "$got" = "$want" ] || { echo "leaflet-$version.tgz: integrity $got, expected $want" >&2; exit 1; }
tar -xzf "$tmp/leaflet-$version.tgz" -C "$tmp"
out=static/vendor/leaflet
rm -rf "$out" && mkdir -p "$out/images"
cp "$tmp/package/dist/leaflet.js" "$tmp/package/dist/leaflet.css" "$tmp/package/LICENSE" "$out/"
cp "$tmp/package/dist/images/"*.png "$out/images/"
echo "leaflet $version vendored into $out"
