// SPDX-License-Identifier: GPL-2.0
/*
 * rpi-tryboot: forward a restart's "tryboot" to the Raspberry Pi firmware.
 *
 * The firmware's one-shot try boot (the next boot reads tryboot.txt instead of config.txt) is set
 * by the "set reboot flags" mailbox property with bit 0. Raspberry Pi's own kernel sends it from
 * its firmware driver when a restart command contains "tryboot" (`reboot "0 tryboot"`); Debian's
 * kernel does not. This module does that, and only that: a reboot notifier that, for a restart
 * whose command contains "tryboot", sends the firmware the message through the firmware driver
 * Debian's kernel has built in (rpi_firmware_property). The kernel's own firmware driver then
 * tells the firmware of the reboot (NOTIFY_REBOOT, at device shutdown), after this notifier, as
 * Raspberry Pi's kernel does.
 *
 * It finds the firmware by its device tree node (compatible "raspberrypi,bcm2835-firmware"). On
 * a board without one (not a Pi) it loads, says so once, and registers nothing: the same image
 * boots on QEMU's virt board, and a module that refused would read as a failure there.
 *
 * Part of agegender's SD-card image (docs/updates.md); built by scripts/package/kernel-module.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/notifier.h>
#include <linux/of.h>
#include <linux/reboot.h>
#include <linux/string.h>
#include <soc/bcm2835/raspberrypi-firmware.h>

#define DRV "rpi-tryboot"

/*
 * Not in mainline's include/soc/bcm2835/raspberrypi-firmware.h (6.1); Raspberry Pi's kernel
 * names them RPI_FIRMWARE_GET_REBOOT_FLAGS / RPI_FIRMWARE_SET_REBOOT_FLAGS, and the firmware's
 * mailbox property interface documents "set reboot flags" as tag 0x00038064.
 */
#define TRYBOOT_TAG_SET_REBOOT_FLAGS 0x00038064
#define TRYBOOT_FLAG_TRYBOOT 0x1

static struct device_node *fw_node;

static int tryboot_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	const char *cmd = data;
	struct rpi_firmware *fw;
	u32 flags = TRYBOOT_FLAG_TRYBOOT;
	int ret;

	if (action != SYS_RESTART || !cmd || !strstr(cmd, "tryboot"))
		return NOTIFY_DONE;
	/*
	 * Looked up now, not at load: the firmware driver may bind after this module loads. The
	 * lines below are KERN_EMERG, as the kernel's own "Restarting system" line that follows
	 * them: the image's command line (loglevel=3) shows nothing milder on the console.
	 */
	fw = rpi_firmware_get(fw_node);
	if (!fw) {
		pr_emerg(DRV ": restart '%s': the firmware driver is not bound: try boot NOT set\n", cmd);
		return NOTIFY_DONE;
	}
	ret = rpi_firmware_property(fw, TRYBOOT_TAG_SET_REBOOT_FLAGS, &flags, sizeof(flags));
	rpi_firmware_put(fw);
	if (ret)
		pr_emerg(DRV ": restart '%s': set reboot flags (tag 0x%08x) failed: %d: try boot NOT set\n",
			 cmd, TRYBOOT_TAG_SET_REBOOT_FLAGS, ret);
	else
		pr_emerg(DRV ": restart '%s': firmware reboot flags set to 0x%x (tag 0x%08x): the next boot is a try boot\n",
			 cmd, TRYBOOT_FLAG_TRYBOOT, TRYBOOT_TAG_SET_REBOOT_FLAGS);
	return NOTIFY_DONE;
}

static struct notifier_block tryboot_nb = {
	.notifier_call = tryboot_notify,
};

static int __init tryboot_init(void)
{
	int ret;

	fw_node = of_find_compatible_node(NULL, NULL, "raspberrypi,bcm2835-firmware");
	if (!fw_node) {
		pr_info(DRV ": no Raspberry Pi firmware in the device tree: restarts are left as they are\n");
		return 0;
	}
	ret = register_reboot_notifier(&tryboot_nb);
	if (ret) {
		of_node_put(fw_node);
		fw_node = NULL;
		pr_err(DRV ": register_reboot_notifier: %d\n", ret);
		return ret;
	}
	pr_info(DRV ": a restart whose command has \"tryboot\" sets the firmware's try boot flag\n");
	return 0;
}

static void __exit tryboot_exit(void)
{
	if (!fw_node)
		return;
	unregister_reboot_notifier(&tryboot_nb);
	of_node_put(fw_node);
}

module_init(tryboot_init);
module_exit(tryboot_exit);
MODULE_DESCRIPTION("Forward a restart's \"tryboot\" to the Raspberry Pi firmware (set reboot flags)");
MODULE_LICENSE("GPL");
