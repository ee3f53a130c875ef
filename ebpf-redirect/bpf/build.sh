#!/usr/bin/env bash
# Rebuilds the committed BPF object from capture.bpf.c. Usage: build.sh [OUT_DIR] (default: this folder).
# Only developers changing the C need clang; installing Weft uses the committed capture.bpf.o.
#
# Reproducible: it compiles from this folder with relative paths, maps the build folder to "." in any
# debug info, and strips DWARF (BTF and its line info stay: libbpf needs them for the .maps section).
# The object depends on the compiler version; the committed one was built with the version in
# capture.bpf.o.toolchain, and test/ebpf-redirect/object.test.ts compares against a fresh build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out_dir="$(mkdir -p "${1:-$here}" && cd "${1:-$here}" && pwd)"
CLANG="${CLANG:-clang}"
LLVM_STRIP="${LLVM_STRIP:-llvm-strip}"
multiarch="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"

cd "$here"
"$CLANG" -O2 -g -Wall -Werror -target bpf \
  -fdebug-prefix-map="$here"=. -fno-ident \
  -I"/usr/include/$multiarch" \
  -c capture.bpf.c -o "$out_dir/capture.bpf.o"
"$LLVM_STRIP" -g "$out_dir/capture.bpf.o"
"$CLANG" --version | head -n 1 > "$out_dir/capture.bpf.o.toolchain"
echo "built $out_dir/capture.bpf.o ($(wc -c < "$out_dir/capture.bpf.o") bytes)"
