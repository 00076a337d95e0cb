// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * wl-tiny: the benchmark's tiny counter process. Protocol (bench-engine.c):
 * writes 'R' on stdout when ready; counts in a loop, checking every 65536
 * iterations with poll(stdin, 0) for the go byte; on it writes 'A' at once
 * ("answered": restored and running), then checks that the counter went on and
 * its mirror agrees, writes 'P' (or 'F') and exits 0 (or 1).
 */
#include <poll.h>
#include <stdint.h>
#include <unistd.h>

static volatile uint64_t count, mirror;

int main(void)
{
	struct pollfd p = { .fd = 0, .events = POLLIN };
	char c;

	if (write(1, "R", 1) != 1)
		return 1;
	for (;;) {
		count++;
		mirror = count * 3 + 1;
		if ((count & 0xffff) == 0 && poll(&p, 1, 0) == 1)
			break;
	}
	if (read(0, &c, 1) != 1 || write(1, "A", 1) != 1)
		return 1;
	if (mirror != count * 3 + 1 || count < 0x10000) {
		(void)!write(1, "F", 1);
		return 1;
	}
	return write(1, "P", 1) == 1 ? 0 : 1;
}
