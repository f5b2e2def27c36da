/* doorbell: see doorbell.h. */
#include "base/doorbell.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/event_opt.h"
#include "base/log.h"

static void on_ring(evutil_socket_t fd, short what, void *arg)
{
	struct doorbell *d = arg;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_error("%s: eventfd read: %s", d->who, strerror(errno));
	d->fn(d->arg);
}

int doorbell_init(struct doorbell *d, struct event_base *base, const char *who,
		  void (*fn)(void *arg), void *arg)
{
	*d = (struct doorbell){ .fd = -1, .fn = fn, .arg = arg, .who = who };
	d->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->fd < 0)
		return -errno;
	d->ev = event_new(base, d->fd, EV_READ | EV_PERSIST, on_ring, d);
	if (!d->ev || event_add(d->ev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

void doorbell_ring(struct doorbell *d)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already non-zero: the loop will wake anyway. */
	if (write(d->fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("%s: eventfd write: %s", d->who, strerror(errno));
}

void doorbell_fini(struct doorbell *d)
{
	event_free_opt(d->ev);
	d->ev = NULL;
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}
