# deps.sh - sourced by scripts/test and scripts/bench: install the Debian
# packages uproc needs when they are missing (a fresh Debian 12 machine).
# up_need_packages PKG... installs whichever are not installed yet.
up_need_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "uproc: installing ${missing[*]}" >&2
	local sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
UP_BUILD_PACKAGES=(gcc libc6-dev liburing-dev libjemalloc-dev libnuma-dev meson ninja-build pkg-config numactl)
UP_TEST_PACKAGES=(libcmocka-dev valgrind python3 wrk erlang-base)
# The ThreadSanitizer stage builds with clang 14: gcc 12's libtsan dies past
# 8128 fibers and takes ~0.3 ms to create one (llvm-14: its symbolizer).
UP_TSAN_PACKAGES=(clang-14 libclang-rt-14-dev llvm-14)
