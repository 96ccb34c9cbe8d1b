#!/bin/busybox sh
# Test-only part of the emulated-board test (scripts/emulated-board/test), NOT in the SD-card
# image: scripts/emulated-board/test appends a second initramfs with this file as
# /lib/agegender/boot.d/50-board-test, the vivid modules in /lib/agegender-test/ and the face feed.
# The image's /init runs it before it starts the kiosk (with $SERIAL, the report's port).
#
# It loads vivid (a virtual V4L2 camera), feeds a picture with faces through vivid's
# output->capture loop, says "BOARD: booted ..." and leaves a command reader in the background:
# the host (scripts/emulated-board/board.py) writes one command per line to the serial port, and
# the answers come back as "BOARD: ..." lines among the report's JSON lines:
#   unplug   unbind and unload vivid, wait, load it again (the camera unplugged and back)
#   kill     SIGKILL agegender; report the new pid once the supervisor has restarted it
#   hang     SIGSTOP agegender: the process lives, its frame loop stops (the watchdog must reset)
#   log      the system log (logread) as BOARD-LOG: lines
#   reboot   busybox reboot (SIGTERM to /init, which stops the kiosk first)
#   restart  the kernel's restart at once (reboot -f: no kiosk stop)
#   tryboot  the same with the command "0 tryboot", as an update asks for its try boot
#   who      the kiosk's user, groups and privileges, chronyd's user, and the login prompts running
#   wifi     the Wi-Fi test's view (only on a card with board-test-wifi.txt): the route to the host,
#            the stations of the access point, who can read the passphrase and whether the log has it
. /lib/agegender-test/board.env

say() { echo "BOARD: $*" >"$SERIAL"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
load_vivid() {
	while read -r m; do
		name=${m##*/}
		name=${name%.ko}
		grep -q "^$(echo "$name" | tr - _) " /proc/modules && continue
		if [ "$name" = vivid ]; then
			insmod "/lib/agegender-test/$m" $VIVID_PARAMS
		else
			insmod "/lib/agegender-test/$m"
		fi || say "FAIL insmod $name"
	done </lib/agegender-test/modules.order
}
wait_for() { # wait_for PATH SECONDS
	n=0
	while [ ! -e "$1" ]; do
		n=$((n + 1))
		[ "$n" -gt $(($2 * 10)) ] && return 1
		sleep 0.1
	done
}

# --- Wi-Fi (issue 32), only on a card with board-test-wifi.txt (board.py puts it there with a
# wpa_supplicant.conf before the last reboot): the access point the image's wpa_supplicant is to
# join, in a network namespace of its own so that nothing of it is the image's. mac80211_hwsim's
# second radio runs a WPA2-PSK hostapd there, bridged to an e1000 NIC on QEMU's user network (the
# image has no driver for it); QEMU's DHCP server answers the image's udhcpc through the bridge,
# and the host's mosquitto is 10.0.2.2 there as on the virtio NIC, whose link board.py has cut.
W=/lib/agegender-test/wifi
wifi_ap() {
	. /boot/board-test-wifi.txt # SSID, PSK
	while read -r m; do
		name=${m##*/}
		name=${name%.ko}
		grep -q "^$(echo "$name" | tr - _) " /proc/modules && continue
		if [ "$name" = mac80211_hwsim ]; then insmod "$W/$m" radios=2; else insmod "$W/$m"; fi ||
			say "FAIL insmod $name"
	done <$W/modules.order
	unshare -n sleep 1000000000 &
	ns=$!
	echo "$ns" >/run/board-test-ap.ns
	wait_for /sys/class/net/wlan1 10 || { say "FAIL wifi: no wlan1 (mac80211_hwsim)"; return 1; }
	LD_LIBRARY_PATH=$W/lib $W/iw phy "$(cat /sys/class/net/wlan1/phy80211/name)" set netns "$ns" ||
		{ say "FAIL wifi: iw phy set netns"; return 1; }
	n=0
	until up=$(for i in /sys/class/net/*; do
		case $(readlink "$i/device/driver") in */e1000) echo "${i##*/}" ;; esac
	done) && [ -n "$up" ]; do
		n=$((n + 1))
		[ "$n" -gt 100 ] && say "FAIL wifi: no e1000 interface" && return 1
		sleep 0.1
	done
	ip link set "$up" netns "$ns" || { say "FAIL wifi: ip link set $up netns"; return 1; }
	cat >/tmp/hostapd.conf <<-EOF
		interface=wlan1
		bridge=br0
		driver=nl80211
		ssid=$SSID
		hw_mode=g
		channel=6
		wpa=2
		wpa_key_mgmt=WPA-PSK
		rsn_pairwise=CCMP
		wpa_passphrase=$PSK
	EOF
	nsenter -t "$ns" -n sh -c "ip link set lo up && brctl addbr br0 &&
		brctl addif br0 $up && ip link set $up up && ip link set br0 up" || { say "FAIL wifi: the bridge"; return 1; }
	nsenter -t "$ns" -n env LD_LIBRARY_PATH=$W/lib $W/hostapd /tmp/hostapd.conf >/tmp/hostapd.log 2>&1 &
	n=0
	until grep -q AP-ENABLED /tmp/hostapd.log; do
		n=$((n + 1))
		[ "$n" -gt 100 ] && say "FAIL wifi: hostapd: $(tail -n 3 /tmp/hostapd.log | tr '\n' ' ')" && return 1
		sleep 0.1
	done
	say "wifi: access point '$SSID' (WPA2-PSK) up at $(uptime_s) s: wlan1 bridged to $up in its own network namespace"
}
[ -f /boot/board-test-wifi.txt ] && wifi_ap &

load_vivid
wait_for /dev/video0 10 || say "FAIL no /dev/video0 (vivid capture)"
wait_for /dev/video1 10 || say "FAIL no /dev/video1 (vivid output)"
MODEL=$(tr -d '\000' </proc/device-tree/model 2>/dev/null)
case "$MODEL" in
Raspberry*)
	# QEMU's raspi3b has no display model the image's vc4 driver can drive (the kiosk runs
	# headless), and its BCM2835 power manager resets the machine at once when the watchdog is
	# armed (it does not count WDOG down): the watchdog is checked here, then unbound.
	wait_for /sys/class/watchdog/watchdog0/identity 10
	wd=$(cat /sys/class/watchdog/watchdog0/identity 2>/dev/null)
	echo bcm2835-wdt >/sys/bus/platform/drivers/bcm2835-wdt/unbind 2>/dev/null
	;;
*)
	wait_for /dev/fb0 10 || say "FAIL no /dev/fb0"
	wd=$(cat /sys/class/watchdog/watchdog0/identity 2>/dev/null)
	;;
esac
say "booted in $(uptime_s) s: $(cat /sys/class/graphics/fb0/name 2>/dev/null), $(cat /sys/class/video4linux/video0/name 2>/dev/null), watchdog ${wd:-none}, boot partition $(findfs LABEL=AGEGENDER), net: $(ls /sys/class/net | tr '\n' ' ')modules: $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"
say "board: ${MODEL:-unknown}, $(grep -c '^processor' /proc/cpuinfo) CPUs, serial0 -> $(readlink /dev/serial0)"
/usr/bin/vivid_feed /dev/video1 /dev/video0 /lib/agegender-test/face.yuyv "$FRAME_W" "$FRAME_H" 2>/tmp/feed.log &

commands() {
	while :; do
		read -r cmd <"$SERIAL" || { sleep 0.2; continue; }
		cmd=$(echo "$cmd" | tr -d '\r')
		case "$cmd" in
		unplug)
			say "unplug at $(uptime_s) s"
			echo vivid.0 >/sys/bus/platform/drivers/vivid/unbind || say "FAIL unbind vivid"
			n=0
			until rmmod vivid 2>/dev/null; do
				n=$((n + 1))
				[ "$n" -gt 100 ] && say "FAIL rmmod vivid: still in use after 20 s" && break
				sleep 0.2
			done
			sleep 2
			load_vivid
			say "vivid reloaded at $(uptime_s) s"
			;;
		kill)
			pid=$(pidof agegender)
			kill -KILL "$pid"
			say "killed agegender pid $pid at $(uptime_s) s"
			n=0
			while :; do
				new=$(pidof agegender)
				[ -n "$new" ] && [ "$new" != "$pid" ] && break
				n=$((n + 1))
				[ "$n" -gt 600 ] && say "FAIL agegender not restarted 120 s after the kill" && break
				sleep 0.2
			done
			say "agegender restarted as pid $new at $(uptime_s) s"
			;;
		hang)
			pid=$(pidof agegender)
			kill -STOP "$pid"
			say "agegender pid $pid stopped at $(uptime_s) s: its frame loop hangs"
			;;
		reboot)
			say "reboot at $(uptime_s) s"
			reboot
			;;
		restart | tryboot)
			# The kernel's restart, at once: plain (what /init's reboot ends in: `reboot -f`), or
			# with "0 tryboot" as an update asks for its try boot (reboot-tryboot,
			# board/image/update.sh). On QEMU's Pi 3 B the watchdog unbound above is bound again
			# first: its driver is the board's restart handler (/dev/watchdog stays closed).
			case "$MODEL" in Raspberry*) echo bcm2835-wdt >/sys/bus/platform/drivers/bcm2835-wdt/bind 2>/dev/null ;; esac
			say "$cmd at $(uptime_s) s: $(grep -c '^rpi_tryboot ' /proc/modules) rpi_tryboot loaded ($(dmesg | grep -o 'rpi-tryboot: .*' | tail -n 1))"
			if [ "$cmd" = tryboot ]; then reboot-tryboot "0 tryboot"; else reboot -f; fi
			;;
		who)
			st=/proc/$(pidof agegender | cut -d' ' -f1)/status
			field() { sed -n "s/^$1:[[:space:]]*//p" "$st" | tr -s ' \t' ' '; }
			cuid=$(sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$(pidof chronyd | cut -d' ' -f1)/status" 2>/dev/null)
			logins=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -cE '^(getty|login)$')
			say "who: agegender uid $(field Uid | cut -d' ' -f1) gid $(field Gid | cut -d' ' -f1) groups $(field Groups) nnp $(field NoNewPrivs) capeff $(field CapEff); chronyd uid ${cuid:-none}; login prompts $logins"
			;;
		wifi)
			. /boot/board-test-wifi.txt
			ns=$(cat /run/board-test-ap.ns 2>/dev/null)
			route=$(ip route get 10.0.2.2 2>&1 | head -n 1)
			stations=$(nsenter -t "$ns" -n env LD_LIBRARY_PATH=$W/lib $W/iw dev wlan1 station dump 2>/dev/null | grep -c '^Station')
			kiosk=$(start-stop-daemon -S -c agegender -x /bin/cat -- /run/wpa_supplicant.conf 2>/dev/null | wc -c)
			say "wifi: route $route; stations $stations; card file $(wc -c </boot/wpa_supplicant.conf) bytes; copy $(stat -c '%a %U' /run/wpa_supplicant.conf); kiosk user reads $kiosk bytes of it; passphrase in the log $(logread | grep -cF "$PSK")"
			;;
		log)
			logread | sed 's/^/BOARD-LOG: /' >"$SERIAL"
			sed 's/^/BOARD-FEED: /' /tmp/feed.log >"$SERIAL"
			[ ! -f /tmp/hostapd.log ] || sed 's/^/BOARD-HOSTAPD: /' /tmp/hostapd.log >"$SERIAL"
			;;
		'') ;;
		*) say "unknown command '$cmd'" ;;
		esac
	done
}
commands &
