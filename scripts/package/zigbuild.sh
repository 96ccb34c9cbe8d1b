# zig and cargo-zigbuild, which build the shipped ARM binaries against glibc 2.27's symbols
# (`cargo zigbuild --target aarch64-unknown-linux-gnu.2.27`): one binary for every glibc from 2.27.
# Source it; it defines variables and functions only. scripts/setup runs zigbuild_install;
# scripts/test, scripts/package/deb (and whatever else builds what ships) run zigbuild_env.
#
# Both come from PyPI as wheels (ziglang: zig's compiler and its glibc stubs and headers;
# cargo-zigbuild: a static binary), in a virtual environment OUTSIDE the checkout: zig names its
# own include folders relative to the working directory when they lie under it, and cargo-zigbuild
# hands those names to bindgen (the v4l crate's <linux/videodev2.h>), whose build script runs in
# another folder and then finds no header.

ZIG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.1
# the oldest glibc the ARM binaries run on (zig's target suffix)
AGEGENDER_GLIBC=${AGEGENDER_GLIBC:-2.27}
ZIGBUILD_VENV=${ZIGBUILD_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/agegender/zigbuild-$ZIG_VERSION-$ZIGBUILD_VERSION}

zigbuild_ready() {
	[ "$("$ZIGBUILD_VENV/bin/cargo-zigbuild" --version 2>/dev/null)" = "cargo-zigbuild $ZIGBUILD_VERSION" ] &&
		[ "$("$ZIGBUILD_VENV/bin/python3" -m ziglang version 2>/dev/null)" = "$ZIG_VERSION" ]
}

zigbuild_install() { # once per machine (about 60 MB of wheels)
	zigbuild_ready && return 0
	[ -x "$ZIGBUILD_VENV/bin/python3" ] || python3 -m venv "$ZIGBUILD_VENV"
	"$ZIGBUILD_VENV/bin/pip" install -q "ziglang==$ZIG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION"
}

zigbuild_env() { # `cargo zigbuild` and `cargo-zigbuild test` on PATH (appended: python3 stays the system's)
	zigbuild_ready || {
		echo "zig $ZIG_VERSION / cargo-zigbuild $ZIGBUILD_VERSION not in $ZIGBUILD_VENV: run scripts/setup --deps" >&2
		return 1
	}
	export PATH=$PATH:$ZIGBUILD_VENV/bin CARGO_ZIGBUILD_PYTHON_PATH=$ZIGBUILD_VENV/bin/python3
}
