/* reboot-tryboot: restart the board with the command "0 tryboot" (docs/updates.md).
 *
 * busybox's reboot takes no argument; the Raspberry Pi firmware's one-shot try boot is asked for
 * with a restart command, as `reboot "0 tryboot"` passes it to the kernel (reboot(2),
 * LINUX_REBOOT_CMD_RESTART2). A kernel that forwards it to the firmware sets the flag; the kernel
 * logs the command either way ("reboot: Restarting system with command '0 tryboot'"), which is what
 * the emulated board's harness reads. Run by /init as root, after the kiosk has stopped and the card
 * is synced. Exits only on failure.
 */
#include <errno.h>
#include <linux/reboot.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "0 tryboot";

	sync();
	syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_RESTART2, cmd);
	fprintf(stderr, "reboot-tryboot: reboot(RESTART2, \"%s\"): %s\n", cmd, strerror(errno));
	return 1;
}
