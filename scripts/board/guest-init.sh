#!/bin/busybox sh
# PID 1 of the emulated arm64 board (scripts/board-test). Loads the virtio-gpu and vivid module
# chains, feeds a picture with faces through vivid's output→capture loop, runs agegender against
# /dev/video0 + /dev/fb0 + /dev/ttyAMA0, unbinds and unloads vivid mid-run and loads it again, then
# prints the program's log and "BOARD: done" and waits for the host to take a screendump.
# Lines starting with "BOARD:" are for the host; JSON lines are agegender's report.

/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp && mount -t tmpfs tmpfs /tmp
# Only errors on the console: the report shares this serial port.
echo "3 4 1 3" >/proc/sys/kernel/printk

. /etc/board.env

say() { echo "BOARD: $*"; }
fail() {
	say "FAIL $*"
	say "done"
	exec sleep 100000
}
uptime_s() { cut -d' ' -f1 /proc/uptime; }
# The PL011's transmit counter (bytes sent on /dev/ttyAMA0).
uart_tx() { sed -n 's/^0:.* tx:\([0-9]*\).*/\1/p' /proc/tty/driver/ttyAMA; }

load() { # load MODULE [params]: insmod from /lib/modules/board
	insmod "/lib/modules/board/$1.ko" $2 || fail "insmod $1"
}

for m in $GPU_MODULES; do load "$m"; done
for m in $VIVID_DEPS; do load "$m"; done
load vivid "$VIVID_PARAMS"

wait_for() { # wait_for PATH SECONDS
	n=0
	while [ ! -e "$1" ]; do
		n=$((n + 1))
		[ "$n" -gt $(($2 * 10)) ] && return 1
		sleep 0.1
	done
}
wait_for /dev/fb0 15 || fail "no /dev/fb0 (virtio-gpu)"
wait_for /dev/video0 10 || fail "no /dev/video0 (vivid capture)"
wait_for /dev/video1 10 || fail "no /dev/video1 (vivid output)"
# Keep the text console off the framebuffer: the screen is the kiosk's.
for b in /sys/class/vtconsole/vtcon*/bind; do echo 0 >"$b" 2>/dev/null; done
say "booted in $(uptime_s) s: $(cat /sys/class/graphics/fb0/name 2>/dev/null) $(cat /sys/class/graphics/fb0/virtual_size 2>/dev/null), $(cat /sys/class/video4linux/video0/name) + $(cat /sys/class/video4linux/video1/name)"

/usr/bin/vivid_feed /dev/video1 /dev/video0 /usr/share/agegender/face.yuyv "$FRAME_W" "$FRAME_H" 2>/tmp/feed.log &

cd /
T0=$(uptime_s)
TX0=$(uart_tx)
say "serial tx counter at start: ${TX0:?no PL011 tx counter in /proc/tty/driver/ttyAMA}"
/usr/bin/agegender run --source /dev/video0 --width "$FRAME_W" --height "$FRAME_H" --fps 30 \
	--display fb:/dev/fb0 --serial /dev/ttyAMA0 --max-frames "$MAX_FRAMES" $AGEGENDER_ARGS \
	2>/tmp/app.log &
APP=$!

# Bytes sent on the serial port since agegender started.
serial_bytes() { echo $(($(uart_tx) - TX0)); }
alive() { kill -0 "$APP" 2>/dev/null; }

# Unplug once the report shows some faces (about UNPLUG_AFTER_BYTES of JSON lines).
n=0
while alive && [ "$(serial_bytes)" -lt "$UNPLUG_AFTER_BYTES" ]; do
	n=$((n + 1))
	[ "$n" -gt $((GUEST_TIMEOUT_S * 5)) ] && break
	sleep 0.2
done
alive || fail "agegender exited before the unplug test: $(tail -n 5 /tmp/app.log | tr '\n' '|')"
say "unplug at $(uptime_s) s after $(serial_bytes) bytes of report"
echo vivid.0 >/sys/bus/platform/drivers/vivid/unbind || fail "unbind vivid"
n=0
until rmmod vivid 2>/dev/null; do
	n=$((n + 1))
	[ "$n" -gt 100 ] && fail "rmmod vivid: still in use after 20 s"
	sleep 0.2
done
say "vivid unloaded at $(uptime_s) s"
sleep "$UNPLUGGED_S"
load vivid "$VIVID_PARAMS"
say "vivid reloaded at $(uptime_s) s"

n=0
while alive; do
	n=$((n + 1))
	if [ "$n" -gt $((GUEST_TIMEOUT_S * 5)) ]; then
		kill "$APP"
		say "agegender did not finish in ${GUEST_TIMEOUT_S} s; killed"
		break
	fi
	sleep 0.2
done
wait "$APP"
RC=$?
say "agegender exit $RC after $(echo "$(uptime_s) $T0" | awk '{printf "%.1f", $1 - $2}') s"
sed 's/^/BOARD-LOG: /' /tmp/app.log
sed 's/^/BOARD-FEED: /' /tmp/feed.log
say "done"
exec sleep 100000
