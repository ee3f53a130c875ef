#!/usr/bin/env bash
# Installs everything Weft needs on a fresh Debian machine (root or sudo), then the npm packages, and
# builds. Idempotent: packages already present are not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

# System peers and tools the tests and the lab use: OpenSSL, Python's h2/grpcio/cryptography (+ grpc_tools
# to generate stubs from Istio's proto), iproute2 for network namespaces, HAProxy as the bench baseline;
# libbpf/libelf/zlib headers for the eBPF addon that `npm ci` builds (the BPF object itself is committed);
# wrk, h2load (nghttp2-client) and iperf3, the independent tools `weft bench agree` checks the generator against.
APT_PACKAGES=(openssl python3 python3-h2 python3-grpcio python3-grpc-tools python3-cryptography python3-protobuf iproute2 nftables curl haproxy tcpdump libbpf-dev libelf-dev zlib1g-dev wrk nghttp2-client iperf3)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node -e 'const [maj] = process.versions.node.split(".").map(Number); if (maj < 20) { console.error(`setup: Node.js 20+ required, found ${process.version}`); process.exit(1); }'

# npm ci runs the `prepare` script, which builds dist/.
npm ci --no-audit --no-fund
