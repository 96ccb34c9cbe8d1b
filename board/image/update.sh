# Signed A/B updates of the SD-card image (issue 33; docs/updates.md). Sourced by /init (busybox
# sh) once the boot partition is mounted read-only at /boot; uses its say and log functions.
#
# The boot partition holds two system slots, a/ and b/ (kernel, initramfs, device trees,
# cmdline.txt). config.txt's os_prefix= names the slot a boot takes; tryboot.txt's the slot a try
# boot takes (the firmware reads tryboot.txt instead of config.txt once, when the restart before
# asked for it: `reboot "0 tryboot"`). Each slot's cmdline.txt ends in agegender.slot=a or =b, so
# the running system knows its slot. update-state.txt records what the last update did, for the
# boot after it.
#
# update_boot, at every boot, in this order:
#  - running a slot that config.txt does not name: this is a try boot. Say so, and watch the kiosk
#    in the background (update_watch): once it has run healthy_s seconds (update.txt; default 120)
#    without a restart, its frame loop feeding the hardware watchdog, commit: config.txt names
#    this slot. If it stops or never arms the watchdog, record why and reboot: config.txt still
#    names the old slot. If it hangs, the watchdog resets the board, to the same effect.
#  - running the slot config.txt names while tryboot.txt names the other: a try did not commit.
#    Say so on the serial port with the reason the try recorded, point tryboot.txt back here.
#  - a bundle (*.swu) at the top of the boot partition or of a USB stick's first partition: unless
#    it is the version running or one that failed before, SWUpdate checks its signature against
#    update-cert.pem and writes it into the other slot; then tryboot.txt names that slot and the
#    board restarts with "0 tryboot". A refused bundle is said on the serial port and renamed
#    *.swu.refused (on the boot partition); an installed one is deleted from it.
# update_fetch, when the kiosk ended its run with status 4 (an update accepted over MQTT: it
# wrote the URL to $UPD_REQUEST): the bundle is downloaded onto the boot partition
# ($UPD_DOWNLOAD) and installed as above. A download that fails, or a bundle not installed, is
# recorded in update-state.txt, which the restarted kiosk publishes on <prefix>/<id>/update.
# Only this file writes the boot partition (remounted read-write for the moment of writing). The
# switch between slots is one byte of config.txt or tryboot.txt (the letter of os_prefix=),
# written in place: the file keeps its size and clusters.

UPD_RUN=/run/agegender-update
UPD_BOOT=$UPD_RUN/boot # the rw mount point the bundle's sw-description writes under
UPD_STATE=/boot/update-state.txt
UPD_HW=agegender-rpi-arm64:1 # scripts/package/bundle's hardware-compatibility
UPD_SLOT=$(sed -n 's/.*agegender\.slot=\([ab]\).*/\1/p' /proc/cmdline)
UPD_VERSION=$(sed -n '1s/^agegender //p' /etc/agegender-release)
# Updates over MQTT: the kiosk (user agegender) writes an accepted command's URL here; only it
# and root can write the directory. The download's name on the boot partition.
UPD_REQUEST_DIR=/run/agegender-request
UPD_REQUEST=$UPD_REQUEST_DIR/url
UPD_DOWNLOAD=/boot/mqtt-update.swu
UPD_DOWNLOAD_S=3600 # the longest a download may take (55 MiB: at 1 Mbit/s about 8 minutes)
UPD_SKIPPED=

upd_slot_of() { # upd_slot_of FILE: the slot letter of its os_prefix= line
	tr -d '\r' <"$1" 2>/dev/null | sed -n 's#^os_prefix=\([ab]\)/$#\1#p' | tail -n 1
}
upd_other() { [ "$1" = a ] && echo b || echo a; }
upd_setting() { # upd_setting KEY DEFAULT: a number from update.txt (`key = 123`)
	local v
	v=$(tr -d '\r' </boot/update.txt 2>/dev/null | sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\([0-9][0-9]*\)[[:space:]]*\$/\1/p" | tail -n 1)
	echo "${v:-$2}"
}
upd_mounted() { grep -q " $1 " /proc/mounts; } # (busybox has no mountpoint)
upd_rw() { # the boot partition writable at $UPD_BOOT (and /boot: the same file system)
	mkdir -p "$UPD_BOOT"
	upd_mounted "$UPD_BOOT" && return 0
	mount -o remount,rw /boot && mount --bind /boot "$UPD_BOOT"
}
upd_ro() {
	sync
	upd_mounted "$UPD_BOOT" && umount "$UPD_BOOT"
	mount -o remount,ro /boot
}
upd_state() { # upd_state WORDS: update-state.txt := WORDS (the boot partition writable)
	echo "$*" >"$UPD_BOOT/update-state.txt.new" && mv -f "$UPD_BOOT/update-state.txt.new" "$UPD_BOOT/update-state.txt"
}
upd_switch() { # upd_switch FILE SLOT: FILE's os_prefix= letter := SLOT, in place (writable)
	local file=$UPD_BOOT/${1##*/} off
	off=$(awk '/^os_prefix=[ab]\/\r?$/ { print n + 10; exit } { n += length($0) + 1 }' "$file")
	[ -n "$off" ] || { say "update: $1 has no os_prefix=a/ or =b/ line: cannot switch slots"; return 1; }
	printf %s "$2" | dd of="$file" bs=1 seek="$off" conv=notrunc 2>/dev/null
	sync
	[ "$(upd_slot_of "$file")" = "$2" ] || { say "update: $1: writing os_prefix=$2/ did not stick"; return 1; }
}

update_boot() {
	if [ -z "$UPD_SLOT" ]; then
		log "update: no agegender.slot= on the kernel command line: updates off"
		return 0
	fi
	committed=$(upd_slot_of /boot/config.txt)
	trying=$(upd_slot_of /boot/tryboot.txt)
	state=$(cat "$UPD_STATE" 2>/dev/null)
	if [ "$UPD_SLOT" != "$committed" ]; then
		UPD_HEALTHY_S=$(upd_setting healthy_s 120)
		say "update: try boot of slot $UPD_SLOT (version $UPD_VERSION); config.txt keeps slot $committed until this one has run healthy for $UPD_HEALTHY_S s"
		upd_rw && upd_state "trying $UPD_SLOT $UPD_VERSION" && upd_ro
		update_watch "$committed" &
		return 0
	fi
	if [ "$trying" != "$UPD_SLOT" ]; then
		# shellcheck disable=SC2086 # the state's words
		set -- $state
		case "$1" in
		failed) why=${state#failed * * } ;;
		trying) why="it did not commit (a watchdog reset, or power lost, during its try)" ;;
		installed) why="its system never started (the firmware did not take the try boot, or its kernel or initramfs failed before /init)" ;;
		*) why="no record of its try" ;;
		esac
		say "update failed: slot $trying (version ${3:-unknown}) did not commit: $why; running slot $UPD_SLOT (version $UPD_VERSION)"
		upd_rw && upd_switch tryboot.txt "$UPD_SLOT" && { [ "$1" = failed ] || upd_state "failed $trying ${3:-unknown} $why"; }
		upd_ro
		state=$(cat "$UPD_STATE" 2>/dev/null)
	fi
	case "$state" in
	installing\ *)
		# shellcheck disable=SC2086
		set -- $state
		say "update: the install of version $3 into slot $2 was interrupted (power lost?); slot $UPD_SLOT is untouched"
		upd_rw && upd_state "interrupted $2 $3" && upd_ro
		;;
	esac
	update_install
}

upd_bundles() { # the *.swu files on offer: the boot partition's, then a USB stick's first partition
	local f dev
	for f in /boot/*.swu; do [ -f "$f" ] && echo "$f"; done
	for dev in /dev/sd[a-z]1; do
		[ -b "$dev" ] || continue
		mkdir -p "$UPD_RUN/usb"
		mount -o ro "$dev" "$UPD_RUN/usb" 2>/dev/null || continue
		for f in "$UPD_RUN/usb"/*.swu; do [ -f "$f" ] && echo "$f"; done
		return 0
	done
}

update_install() {
	target=$(upd_other "$UPD_SLOT")
	for f in $(upd_bundles); do
		# sw-description is the archive's first file: its version line, read before trusting it only
		# to skip a bundle already running or already failed (SWUpdate checks the signature).
		v=$(head -c 8192 "$f" | tr '\000\t' '\n\n' | sed -n 's/^ *version = "\([^"]*\)";.*$/\1/p' | head -n 1)
		if [ "$v" = "$UPD_VERSION" ]; then
			log "update: $f is version $v, the one running"
			UPD_SKIPPED="$v version $v is the one running"
			continue
		fi
		case "$(cat "$UPD_STATE" 2>/dev/null)" in
		"failed $target $v "* | "failed $UPD_SLOT $v "*)
			say "update: $f (version $v) failed before; not tried again (remove it, or bring another version)"
			UPD_SKIPPED="$v version $v failed its try before; not tried again"
			continue
			;;
		esac
		say "update: installing $f (version ${v:-unknown}) into slot $target"
		upd_rw || { say "update: cannot write the boot partition"; return 1; }
		upd_state "installing $target ${v:-unknown}"
		sync
		t0=$(cut -d. -f1 /proc/uptime)
		if ! swupdate -i "$f" -k /boot/update-cert.pem -e "stable,$target" -H "$UPD_HW" -l 3 >"$UPD_RUN.log" 2>&1; then
			why=$(sed -n 's/.*ERROR[^:]*: *//p' "$UPD_RUN.log" | grep -v '^SWUpdate \*failed\*' | head -n 2 | tr '\n' ' ')
			say "update refused: $f (version ${v:-unknown}): ${why:-swupdate failed (see logread)}; slot $UPD_SLOT stays"
			logger -t swupdate <"$UPD_RUN.log"
			upd_state "refused $target ${v:-unknown} ${why:-swupdate failed}"
			# (a download is deleted: it takes the room of the next one, and can be fetched again)
			if [ "$f" = "$UPD_DOWNLOAD" ]; then
				rm -f "$UPD_BOOT/${f#/boot/}"
			else
				case "$f" in /boot/*) mv -f "$UPD_BOOT/${f#/boot/}" "$UPD_BOOT/${f#/boot/}.refused" || say "update: cannot rename $f" ;; esac
			fi
			upd_ro
			continue
		fi
		logger -t swupdate <"$UPD_RUN.log"
		upd_switch tryboot.txt "$target" || { upd_ro && return 1; }
		upd_state "installed $target ${v:-unknown}"
		# the slot holds it now; the partition has room for two slots and one bundle
		case "$f" in /boot/*) rm "$UPD_BOOT/${f#/boot/}" || say "update: cannot delete $f" ;; esac
		say "update: version ${v:-unknown} written to slot $target in $(($(cut -d. -f1 /proc/uptime) - t0)) s; restarting with a try boot of it"
		upd_ro
		upd_mounted "$UPD_RUN/usb" && umount "$UPD_RUN/usb"
		reboot-tryboot "0 tryboot"
		say "update: the try boot could not be asked for; slot $UPD_SLOT stays"
		return 1
	done
	upd_mounted "$UPD_RUN/usb" && umount "$UPD_RUN/usb"
	return 0
}

# update_watch OLD-SLOT (in the background of a try boot): commit once the kiosk has run healthy.
update_watch() {
	old=$1
	limit=$(upd_setting deadline_s 600) # no healthy run by then: the try failed
	pid= since=
	while :; do
		sleep 2
		now=$(cut -d. -f1 /proc/uptime)
		p=$(pidof agegender | cut -d' ' -f1)
		# /init logs each exit before it starts the kiosk again: any is a failed try
		why=$(logread | sed -n 's/.*init: \(agegender exited with status [0-9]* after [0-9]* s\).*/\1/p' | tail -n 1)
		if [ -n "$why" ] || { [ -n "$pid" ] && [ "$p" != "$pid" ]; }; then
			upd_fail "${why:-agegender stopped} during the try"
			return
		fi
		if [ -z "$pid" ] && [ -n "$p" ] && ls -l "/proc/$p/fd" 2>/dev/null | grep -q ' -> /dev/watchdog$'; then
			pid=$p since=$now
			log "update: try of slot $UPD_SLOT: agegender (pid $pid) runs with the watchdog armed"
		fi
		if [ -n "$since" ] && [ $((now - since)) -ge "$UPD_HEALTHY_S" ]; then
			upd_rw && upd_switch config.txt "$UPD_SLOT" && upd_state "committed $UPD_SLOT $UPD_VERSION" &&
				say "update: slot $UPD_SLOT (version $UPD_VERSION) committed: agegender ran $((now - since)) s with the watchdog fed and no restart; slot $old is the fallback for the next update"
			upd_ro
			return
		fi
		if [ -z "$pid" ] && [ "$now" -ge "$limit" ]; then
			upd_fail "agegender did not arm the watchdog within $limit s of the boot"
			return
		fi
	done
}
upd_fail() { # the try failed: record why, restart into config.txt's slot
	say "update: slot $UPD_SLOT (version $UPD_VERSION) failed its try: $1; restarting into slot $(upd_slot_of /boot/config.txt)"
	upd_rw && upd_state "failed $UPD_SLOT $UPD_VERSION $1" && upd_ro
	reboot
}

# update_offer: before the kiosk first starts, when updates are on: the hand-off directory, and
# the kiosk's flags for updates over MQTT (used only when agegender.toml sets `mqtt`).
update_offer() {
	[ -n "$UPD_SLOT" ] || return 0
	rm -rf "$UPD_REQUEST_DIR"
	# (busybox has no `install`)
	if ! { mkdir -m 0700 "$UPD_REQUEST_DIR" && chown agegender:agegender "$UPD_REQUEST_DIR"; }; then
		say "update: cannot make $UPD_REQUEST_DIR: updates over MQTT off"
		return 0
	fi
	echo "--mqtt-update-request $UPD_REQUEST --mqtt-update-state $UPD_STATE"
}

# upd_fetch_fail WHY: the download failed: say it, record it for the kiosk to publish.
upd_fetch_fail() {
	say "update failed: $1; slot $UPD_SLOT stays"
	upd_rw && upd_state "fetch-failed $(upd_other "$UPD_SLOT") - $1"
	rm -f "$UPD_BOOT/${UPD_DOWNLOAD#/boot/}.part"
	upd_ro
}

# update_fetch (the kiosk exited with status 4): download the URL it handed over onto the boot
# partition and install it as a bundle offered there (update_install: a good one restarts the
# board into its try boot and does not return). busybox wget: http and https, but busybox's TLS
# does not check the server's certificate; what makes a download trustworthy is the bundle's
# signature, which SWUpdate checks against update-cert.pem before writing anything.
update_fetch() {
	local f=$UPD_REQUEST url hdrs size free need why part=$UPD_DOWNLOAD.part t0
	[ -n "$UPD_SLOT" ] || { say "update: asked over MQTT, but this system has no slot: updates off"; return 1; }
	# the kiosk's file: a plain file (not a link), one line, an http(s) URL
	if [ ! -f "$f" ] || [ -L "$f" ]; then
		say "update: the kiosk asked for an update but $f is not there"
		return 1
	fi
	url=$(head -c 2100 "$f" | head -n 1)
	rm -f "$f"
	if ! printf '%s\n' "$url" | grep -Eq '^https?://[]A-Za-z0-9._~:%!$&()*+,;=[-]+(/[]A-Za-z0-9._~:/?#@!$&()*+,;=%[-]*)?$' ||
		[ ${#url} -gt 2048 ]; then
		upd_fetch_fail "the URL handed over is not one this image fetches: $(printf '%s' "$url" | head -c 200 | tr -d '\000-\037\177')"
		return 1
	fi
	mkdir -p "$UPD_RUN"
	upd_rw || { say "update: cannot write the boot partition"; return 1; }
	rm -f "$UPD_BOOT/${part#/boot/}" "$UPD_BOOT/${UPD_DOWNLOAD#/boot/}"
	# The server's answer first (busybox's --spider: the headers of a GET, no body), then room:
	# the size it announces against the partition's free space, 1 MiB spare. Time limits from
	# busybox's `timeout`: Debian 12's busybox-static 1.35 wget has no timeout of its own (its -T
	# crashes it), so a server that stops answering would hold the board forever.
	if ! hdrs=$(timeout 60 wget -S --spider "$url" 2>&1); then
		why=$(printf '%s\n' "$hdrs" | grep -v '^note: TLS certificate validation' | tail -n 1 | tr -d '\000-\037\177')
		upd_fetch_fail "$url: ${why:-no answer within 60 s}"
		return 1
	fi
	size=$(printf '%s\n' "$hdrs" | sed -n 's/^ *[Cc]ontent-[Ll]ength: *\([0-9]*\).*/\1/p' | tail -n 1)
	free=$(df -k /boot | awk 'NR == 2 { print $4 }')
	if [ -n "$size" ] && [ -n "$free" ]; then
		need=$((size / 1024 + 1024))
		if [ "$need" -gt "$free" ]; then
			upd_fetch_fail "$url: the bundle is $((size / 1048576)) MiB, the boot partition has $((free / 1024)) MiB free"
			return 1
		fi
	fi
	say "update: downloading $url (asked over MQTT${size:+, $((size / 1048576)) MiB}) onto the boot partition"
	t0=$(cut -d. -f1 /proc/uptime)
	if ! timeout "$UPD_DOWNLOAD_S" wget -q -O "$UPD_BOOT/${part#/boot/}" "$url" 2>"$UPD_RUN.wget"; then
		why=$(grep -v '^note: TLS certificate validation' "$UPD_RUN.wget" | tail -n 1 | tr -d '\000-\037\177')
		[ -n "$why" ] || why="not downloaded within $UPD_DOWNLOAD_S s (or wget was killed)"
		free=$(df -k /boot | awk 'NR == 2 { print $4 }')
		[ "${free:-1}" -gt 0 ] || why="the boot partition is full ($why)"
		upd_fetch_fail "$url: ${why:-wget failed}"
		return 1
	fi
	mv -f "$UPD_BOOT/${part#/boot/}" "$UPD_BOOT/${UPD_DOWNLOAD#/boot/}"
	sync
	log "update: $url downloaded in $(($(cut -d. -f1 /proc/uptime) - t0)) s"
	upd_ro
	# installed: a try boot (no return); otherwise refused (recorded by update_install) or skipped
	UPD_SKIPPED=
	update_install
	if [ -f "$UPD_DOWNLOAD" ]; then
		upd_rw && rm -f "$UPD_BOOT/${UPD_DOWNLOAD#/boot/}"
		# shellcheck disable=SC2086 # "VERSION WHY..."
		[ -z "$UPD_SKIPPED" ] || upd_state "skipped $(upd_other "$UPD_SLOT") $UPD_SKIPPED"
		upd_ro
	fi
}
