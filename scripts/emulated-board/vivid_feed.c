/*
 * vivid_feed: push a still YUYV picture into vivid's video *output* device so that, with vivid's
 * "Loop Video" control on, the same picture comes out of its video *capture* device — real frames
 * through the real V4L2 capture path, for the emulated-board test (scripts/emulated-board/test).
 *
 *   vivid_feed OUT_DEV CAP_DEV FRAME.yuyv WIDTH HEIGHT
 *
 * vivid loops output to capture only when both ends are HDMI (or both S-Video) with the same pixel
 * format, size and field; the board test loads vivid with one HDMI input and one HDMI output
 * (num_inputs=1 input_types=0x3 num_outputs=1 output_types=0x1) and the program under test picks
 * YUYV. This helper sets "Loop Video" on the capture node, configures the output node, and keeps its
 * buffers cycling. When the device disappears (vivid unbound or unloaded) it closes everything and
 * retries every 200 ms, so it survives the unplug/replug test by itself.
 *
 * Built statically with aarch64-linux-gnu-gcc by scripts/emulated-board/test.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define NBUF 4

static int xioctl(int fd, unsigned long req, void *arg) {
	int r;
	do {
		r = ioctl(fd, req, arg);
	} while (r < 0 && errno == EINTR);
	return r;
}

/* Find the control named `name` on `fd` and set it to `value`. */
static int set_named_ctrl(int fd, const char *name, int value) {
	struct v4l2_queryctrl q;
	memset(&q, 0, sizeof q);
	q.id = V4L2_CTRL_FLAG_NEXT_CTRL;
	while (xioctl(fd, VIDIOC_QUERYCTRL, &q) == 0) {
		if (strcmp((const char *)q.name, name) == 0) {
			struct v4l2_control c = {.id = q.id, .value = value};
			return xioctl(fd, VIDIOC_S_CTRL, &c);
		}
		q.id |= V4L2_CTRL_FLAG_NEXT_CTRL;
	}
	errno = ENOENT;
	return -1;
}

static int enable_loop(const char *cap_dev) {
	int fd = open(cap_dev, O_RDWR | O_NONBLOCK);
	if (fd < 0)
		return -1;
	int r = set_named_ctrl(fd, "Loop Video", 1);
	/* vivid prints a text overlay (counters, controls) into captured frames; turn it off. */
	set_named_ctrl(fd, "OSD Text Mode", 2);
	close(fd);
	return r;
}

/* One streaming session; returns when the device fails (e.g. ENODEV). */
static void session(const char *out_dev, const unsigned char *frame, size_t frame_len,
		    unsigned w, unsigned h) {
	void *maps[NBUF] = {0};
	size_t lens[NBUF] = {0};
	unsigned nbuf = 0;
	int fd = open(out_dev, O_RDWR | O_NONBLOCK);
	if (fd < 0)
		return;

	int output = 0;
	xioctl(fd, VIDIOC_S_OUTPUT, &output);
	struct v4l2_format f;
	memset(&f, 0, sizeof f);
	f.type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
	f.fmt.pix.width = w;
	f.fmt.pix.height = h;
	f.fmt.pix.pixelformat = V4L2_PIX_FMT_YUYV;
	f.fmt.pix.field = V4L2_FIELD_NONE;
	f.fmt.pix.bytesperline = w * 2;
	if (xioctl(fd, VIDIOC_S_FMT, &f) < 0) {
		perror("vivid_feed: VIDIOC_S_FMT");
		goto out;
	}
	if (f.fmt.pix.width != w || f.fmt.pix.height != h ||
	    f.fmt.pix.pixelformat != V4L2_PIX_FMT_YUYV) {
		fprintf(stderr, "vivid_feed: output format became %ux%u\n", f.fmt.pix.width,
			f.fmt.pix.height);
		goto out;
	}
	struct v4l2_requestbuffers rb = {
	    .count = NBUF, .type = V4L2_BUF_TYPE_VIDEO_OUTPUT, .memory = V4L2_MEMORY_MMAP};
	if (xioctl(fd, VIDIOC_REQBUFS, &rb) < 0) {
		perror("vivid_feed: VIDIOC_REQBUFS");
		goto out;
	}
	nbuf = rb.count < NBUF ? rb.count : NBUF;
	for (unsigned i = 0; i < nbuf; i++) {
		struct v4l2_buffer b;
		memset(&b, 0, sizeof b);
		b.type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
		b.memory = V4L2_MEMORY_MMAP;
		b.index = i;
		if (xioctl(fd, VIDIOC_QUERYBUF, &b) < 0)
			goto out;
		maps[i] = mmap(NULL, b.length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, b.m.offset);
		if (maps[i] == MAP_FAILED) {
			maps[i] = NULL;
			goto out;
		}
		lens[i] = b.length;
		memcpy(maps[i], frame, frame_len < b.length ? frame_len : b.length);
		b.bytesused = frame_len < b.length ? frame_len : b.length;
		b.field = V4L2_FIELD_NONE;
		if (xioctl(fd, VIDIOC_QBUF, &b) < 0) {
			perror("vivid_feed: VIDIOC_QBUF");
			goto out;
		}
	}
	int type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
	if (xioctl(fd, VIDIOC_STREAMON, &type) < 0) {
		perror("vivid_feed: VIDIOC_STREAMON");
		goto out;
	}
	fprintf(stderr, "vivid_feed: streaming %ux%u YUYV into %s\n", w, h, out_dev);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int r = poll(&p, 1, 2000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL)))
			break;
		struct v4l2_buffer b;
		memset(&b, 0, sizeof b);
		b.type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
		b.memory = V4L2_MEMORY_MMAP;
		if (xioctl(fd, VIDIOC_DQBUF, &b) < 0) {
			if (errno == EAGAIN)
				continue;
			break;
		}
		b.bytesused = frame_len < lens[b.index] ? frame_len : lens[b.index];
		b.field = V4L2_FIELD_NONE;
		if (xioctl(fd, VIDIOC_QBUF, &b) < 0)
			break;
	}
	fprintf(stderr, "vivid_feed: %s went away (%s); retrying\n", out_dev, strerror(errno));
out:
	for (unsigned i = 0; i < NBUF; i++)
		if (maps[i])
			munmap(maps[i], lens[i]);
	close(fd);
}

int main(int argc, char **argv) {
	if (argc != 6) {
		fprintf(stderr, "usage: %s OUT_DEV CAP_DEV FRAME.yuyv WIDTH HEIGHT\n", argv[0]);
		return 2;
	}
	unsigned w = (unsigned)atoi(argv[4]), h = (unsigned)atoi(argv[5]);
	size_t len = (size_t)w * h * 2;
	unsigned char *frame = malloc(len);
	FILE *fp = fopen(argv[3], "rb");
	if (!frame || !fp || fread(frame, 1, len, fp) != len) {
		fprintf(stderr, "vivid_feed: %s: cannot read %zu bytes of %ux%u YUYV\n", argv[3], len,
			w, h);
		return 1;
	}
	fclose(fp);
	for (;;) {
		if (enable_loop(argv[2]) == 0)
			session(argv[1], frame, len, w, h);
		usleep(200 * 1000);
	}
}
