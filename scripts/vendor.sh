#!/usr/bin/env bash
# Re-fetch the vendored front-end libraries from the npm registry and check them against
# static/vendor/SHA256SUMS. Run it when upgrading a library; the studio never loads a CDN.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fetch() {  # fetch <package@version> <file inside the package> <vendored name>
  (cd "$tmp" && npm pack --silent "$1" >/dev/null)
  local tgz
  tgz=$(ls "$tmp"/*.tgz)
  mkdir -p "$tmp/x" && tar xzf "$tgz" -C "$tmp/x"
  cp "$tmp/x/package/$2" "$dest/$3"
  rm -rf "$tmp/x" "$tgz"
}
fetch htmx.org@2.0.11 dist/htmx.min.js htmx-2.0.11.min.js
fetch htmx-ext-sse@2.2.4 dist/sse.min.js htmx-ext-sse-2.2.4.min.js
fetch @alpinejs/csp@3.17.4 dist/cdn.min.js alpinejs-csp-3.17.4.min.js
fetch chart.js@4.6.1 dist/chart.umd.min.js chart.js-4.6.1.umd.min.js
fetch swagger-ui-dist@5.35.0 swagger-ui-bundle.js swagger-ui-5.35.0-bundle.js
fetch swagger-ui-dist@5.35.0 swagger-ui.css swagger-ui-5.35.0.css
# Source-map comments would make browsers request files we do not ship.
sed -i 's|//# sourceMappingURL=.*||' "$dest"/swagger-ui-5.35.0-bundle.js "$dest"/swagger-ui-5.35.0.css
(cd "$dest" && sha256sum -c SHA256SUMS)
