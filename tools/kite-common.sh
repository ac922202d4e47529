# Shared by tools/kite-up and tools/kite-test: install what is missing,
# build, and find memory for DPDK. Sourced, not run.

KITE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KITE_BUILD=${KITE_BUILD:-$KITE_ROOT/build}

# Debian 12 packages the node, its tests and its tools need.
KITE_PACKAGES=(
	gcc libc6-dev make pkg-config meson ninja-build python3 procps
	libdpdk-dev dpdk dpdk-dev libnuma-dev libcmocka-dev libsodium-dev libxxhash-dev libpcap-dev
	libjansson-dev libcurl4-openssl-dev etcd-server etcd-client nftables
	iproute2 ethtool iputils-ping memcached libmemcached-tools systemd
	clang libclang-rt-14-dev gnuplot-nox
	python3-venv python3-pip python3-setuptools python3-pytest
	postgresql python3-psycopg2
	libmicrohttpd-dev prometheus curl
)

kite_log() {
	printf '\033[1m==> %s\033[0m\n' "$*"
}

kite_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

kite_need_root() {
	[ "$(id -u)" = 0 ] || kite_die "run as root (DPDK, hugepages and network namespaces need it)"
}

# Install the packages that are not installed yet, with apt-get.
kite_install() {
	local missing=()
	for p in "${KITE_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		kite_log "packages: all ${#KITE_PACKAGES[@]} present"
		return
	fi
	kite_log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q </dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

# Configure (once) and build into $KITE_BUILD.
kite_build() {
	if [ ! -f "$KITE_BUILD/build.ninja" ]; then
		kite_log "configuring $KITE_BUILD"
		meson setup "$KITE_BUILD" "$KITE_ROOT" "$@" >/dev/null
	fi
	kite_log "building"
	ninja -C "$KITE_BUILD"
}

# Reserve 2 MiB hugepages if possible; sets KITE_EAL_MEM to the EAL memory
# arguments: hugepages when there are enough, else --no-huge.
kite_hugepages() {
	local want=${1:-256} nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
	local free=/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages
	KITE_EAL_MEM=(--no-huge -m 512)
	if [ -w "$nr" ]; then
		if [ "$(cat "$free")" -lt "$want" ]; then
			echo $(($(cat "$nr") + want - $(cat "$free"))) >"$nr" 2>/dev/null || true
		fi
		mkdir -p /dev/hugepages
		mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
		if [ "$(cat "$free")" -ge "$want" ] && mountpoint -q /dev/hugepages; then
			KITE_EAL_MEM=(--huge-dir /dev/hugepages --huge-unlink -m $((want * 2)))
			kite_log "hugepages: $(cat "$free") x 2 MiB free"
			return
		fi
	fi
	kite_log "hugepages: not available, using --no-huge (slower, fine for trying Kite)"
}
