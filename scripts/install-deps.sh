#!/bin/sh
# Installs the Debian 12 packages cellvisor needs to build, test and benchmark.
# Idempotent: packages already present are skipped; apt-get update runs once, only
# when something is missing.
set -eu

BUILD="build-essential pkg-config meson ninja-build clang libclang-rt-14-dev
libjansson-dev libseccomp-dev libcmocka-dev libsodium-dev"
TEST="python3 python3-pytest iproute2 util-linux procps strace libcap2-bin"
BENCH="bubblewrap crun runc busybox-static hyperfine"

want="$BUILD $TEST"
case "${1:-}" in
--bench) want="$want $BENCH" ;;
esac

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -z "$missing" ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing Debian packages:$missing (run as root to install)" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
