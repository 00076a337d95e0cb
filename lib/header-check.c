// SPDX-License-Identifier: LGPL-2.1-or-later
/* Built (never run) in strict C99: warmfork.h must stand alone in a
 * runtime's own build, whatever its C dialect. */
#include <warmfork.h>

int main(void)
{
	struct wf_acquire_opts o = { sizeof(o), 0, 0, 0 };

	return (int)o.sz == 0 ? 1 : 0;
}
