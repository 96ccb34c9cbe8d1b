# Shared by scripts/package/image (the SD-card image) and scripts/emulated-board/test (which boots
# that image):
# Debian arm64 packages, kernel modules with their dependencies, and reproducible cpio archives.
# Source it; it defines functions only. Callers set CACHE (a cache folder) first.

# Debian's arm64 packages, fetched without touching the host's dpkg configuration: a private apt
# state in $CACHE/apt with our own source list (bookworm with `non-free-firmware`, where
# raspi-firmware lives). No root needed, no `dpkg --add-architecture`.
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}

apt_arm64() { # apt_arm64 apt-get|apt-cache ARGS...: run against the private arm64 state
	apt_arch arm64 "$@"
}

apt_arm64_update() { # once per cache, or when a package can no longer be found
	apt_arch_update arm64
}

# The same for another architecture ARCH, in a state of its own ($CACHE/apt-ARCH): the host's
# (amd64) for the kernel's build tools, which must run here (scripts/package/kernel-module).
apt_state() { if [ "$1" = arm64 ]; then echo "$CACHE/apt"; else echo "$CACHE/apt-$1"; fi; }
apt_arch() { # apt_arch ARCH apt-get|apt-cache ARGS...
	local arch=$1 tool=$2 a
	a=$(apt_state "$arch")
	shift 2
	"$tool" -q -o Dir::Etc::SourceList="$a/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null \
		-o Dir::State="$a/state" -o Dir::State::status="$a/state/status" -o Dir::Cache="$a/cache" \
		-o APT::Architecture="$arch" -o APT::Architectures::="$arch" \
		-o APT::Sandbox::User=root -o Debug::NoLocking=1 "$@"
}
apt_arch_update() { # apt_arch_update ARCH
	local arch=$1 a
	a=$(apt_state "$arch")
	mkdir -p "$a/state/lists/partial" "$a/cache/archives/partial"
	touch "$a/state/status"
	local key=/usr/share/keyrings/debian-archive-keyring.gpg
	cat >"$a/sources.list" <<-EOF
		deb [arch=$arch signed-by=$key] $DEBIAN_MIRROR $DEBIAN_SUITE main non-free-firmware
		deb [arch=$arch signed-by=$key] $DEBIAN_MIRROR $DEBIAN_SUITE-updates main non-free-firmware
		deb [arch=$arch signed-by=$key] $DEBIAN_SECURITY_MIRROR $DEBIAN_SUITE-security main non-free-firmware
	EOF
	apt_arch "$arch" apt-get update >&2
}

# debs_fetch_exact ARCH DIR PKG=VERSION...: those exact versions (of ARCH or `all`) in DIR,
# downloaded once; prints each .deb's path, in the order given. For packages that must match
# another one exactly (the kernel's headers and build tools: the kernel package's version).
debs_fetch_exact() {
	local arch=$1 dir=$2 p want=()
	shift 2
	mkdir -p "$dir"
	for p in "$@"; do
		deb_exact "$dir" "$arch" "$p" >/dev/null || want+=("$p")
	done
	if [ ${#want[@]} -gt 0 ]; then
		[ -f "$(apt_state "$arch")/state/status" ] || apt_arch_update "$arch"
		echo "[debs] apt-get download ${want[*]} ($arch)" >&2
		(cd "$dir" && apt_arch "$arch" apt-get download "${want[@]}" >&2) || {
			apt_arch_update "$arch" && (cd "$dir" && apt_arch "$arch" apt-get download "${want[@]}" >&2)
		} || return 1
	fi
	for p in "$@"; do
		deb_exact "$dir" "$arch" "$p" || { echo "debs_fetch_exact: no ${p%%=*} ${p#*=} ($arch) in $dir" >&2; return 1; }
	done
}
deb_exact() { # deb_exact DIR ARCH PKG=VERSION: the path of that .deb, if DIR has it
	local f
	for f in "$1/${3%%=*}_${3#*=}_$2.deb" "$1/${3%%=*}_${3#*=}_all.deb"; do
		[ -f "$f" ] && echo "$f" && return 0
	done
	return 1
}

# debs_fetch DIR PKG...: the .deb of each package in DIR (downloaded once; a package already there,
# any version, is kept: the cache is the build's input, SHA256SUMS says which versions went in).
# `linux-image` stands for the kernel package Debian's linux-image-arm64 depends on.
debs_fetch() {
	local dir=$1 p want=()
	shift
	mkdir -p "$dir"
	for p in "$@"; do
		deb_path "$dir" "$p" >/dev/null 2>&1 || want+=("$p")
	done
	[ ${#want[@]} -gt 0 ] || return 0
	[ -f "$CACHE/apt/state/status" ] || apt_arm64_update
	local names=()
	for p in "${want[@]}"; do
		if [ "$p" = linux-image ]; then
			p=$(apt_arm64 apt-cache depends linux-image-arm64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
			[ -n "$p" ] || { echo "debs_fetch: no kernel package behind linux-image-arm64" >&2; return 1; }
		fi
		names+=("$p")
	done
	echo "[debs] apt-get download ${names[*]} (arm64)" >&2
	(cd "$dir" && apt_arm64 apt-get download "${names[@]}" >&2) || {
		apt_arm64_update && (cd "$dir" && apt_arm64 apt-get download "${names[@]}" >&2)
	}
}

deb_path() { # deb_path DIR NAME: the one cached .deb of package NAME (`linux-image`: the kernel)
	local f
	if [ "$2" = linux-image ]; then
		f=$(ls "$1"/linux-image-[0-9]*_arm64.deb 2>/dev/null | head -n1)
	else
		f=$(ls "$1/$2"_*_arm64.deb "$1/$2"_*_all.deb 2>/dev/null | head -n1)
	fi
	[ -n "$f" ] || { echo "deb_path: no $2 in $1" >&2; return 1; }
	echo "$f"
}

deb_unpack() { # deb_unpack DEB: print a folder with its files (unpacked once, in $CACHE/x)
	local d=$CACHE/x/$(basename "$1" .deb)
	if [ ! -f "$d/.done" ]; then
		rm -rf "$d" && mkdir -p "$d" && dpkg-deb -x "$1" "$d" && touch "$d/.done"
	fi
	echo "$d"
}

# modules_copy KROOT KVER LIST ROOT: the modules named in LIST (a file: one name per line, `#`
# comments; `-` and `_` alike) and everything they depend on, from the unpacked kernel package
# KROOT into ROOT/lib/modules/KVER (same paths), uncompressed. Prints the modules in load order
# (dependencies first), one path relative to ROOT/lib/modules/KVER per line. Fails naming any
# module the kernel does not have.
modules_copy() {
	local kroot=$1 kver=$2 list=$3 root=$4
	local mdir=$kroot/lib/modules/$kver
	[ -f "$mdir/modules.dep" ] || depmod -b "$kroot" "$kver" || return 1
	python3 - "$mdir" "$list" "$root/lib/modules/$kver" <<-'EOF'
		import lzma, gzip, os, re, shutil, sys
		mdir, listfile, dest = sys.argv[1:4]
		deps = {}
		for line in open(os.path.join(mdir, "modules.dep")):
		    mod, _, rest = line.partition(":")
		    deps[mod] = rest.split()
		byname = {}
		for mod in deps:
		    name = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", os.path.basename(mod)).replace("-", "_")
		    byname[name] = mod
		want = []
		for raw in open(listfile):
		    name = raw.split("#", 1)[0].strip()
		    if name:
		        key = name.replace("-", "_")
		        if key not in byname:
		            sys.exit(f"modules_copy: {listfile}: no module {name} in this kernel")
		        want.append(byname[key])
		order, seen = [], set()
		def visit(mod):
		    if mod in seen:
		        return
		    seen.add(mod)
		    for d in reversed(deps[mod]):  # modules.dep lists the deepest dependency last
		        visit(d)
		    order.append(mod)
		for mod in want:
		    visit(mod)
		for mod in order:
		    src = os.path.join(mdir, mod)
		    out = os.path.join(dest, re.sub(r"\.(xz|gz|zst)$", "", mod))
		    os.makedirs(os.path.dirname(out), exist_ok=True)
		    if mod.endswith(".xz"):
		        open(out, "wb").write(lzma.open(src).read())
		    elif mod.endswith(".gz"):
		        open(out, "wb").write(gzip.open(src).read())
		    elif mod.endswith(".zst"):
		        sys.exit("modules_copy: .ko.zst modules: add zstd support here")
		    else:
		        shutil.copyfile(src, out)
		    print(re.sub(r"\.(xz|gz|zst)$", "", mod))
	EOF
}

# cpio_pack ROOT EPOCH: a newc archive of ROOT on stdout, reproducible: names sorted, owner root,
# every time stamp EPOCH, inode and device numbers from the archive, not the disk.
cpio_pack() {
	local root=$1 epoch=$2
	find "$root" -exec touch -h -d "@$epoch" {} +
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible --owner 0:0 --quiet)
}

# glibc_copy BIN ROOT LIBDIR: the program interpreter and the shared libraries BIN needs (readelf's
# NEEDED entries, recursively), from LIBDIR (an unpacked libc6:arm64 etc.) into ROOT.
glibc_copy() {
	local bin=$1 root=$2 libdir=$3 interp lib todo seen=" "
	interp=$(aarch64-linux-gnu-readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
	[ -n "$interp" ] || { echo "glibc_copy: $bin has no program interpreter" >&2; return 1; }
	mkdir -p "$root$(dirname "$interp")" "$root/lib"
	cp -L "$libdir/$(basename "$interp")" "$root$interp" || return 1
	todo=$(aarch64-linux-gnu-readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
	while [ -n "$todo" ]; do
		set -- $todo
		lib=$1
		shift
		todo="$*"
		case "$seen" in *" $lib "*) continue ;; esac
		seen="$seen$lib "
		[ -f "$libdir/$lib" ] || { echo "glibc_copy: no $lib in $libdir" >&2; return 1; }
		cp -L "$libdir/$lib" "$root/lib/$lib"
		todo="$todo $(aarch64-linux-gnu-readelf -d "$libdir/$lib" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')"
	done
}
