/* doorbell: how a worker thread wakes the event loop to collect what it finished (the store's
 * writer, the log reader): an eventfd the loop watches. Ringing is thread-safe and never
 * blocks; rings before the loop answers fold into one call of fn. */
#ifndef WARDEN_DOORBELL_H
#define WARDEN_DOORBELL_H

struct event;
struct event_base;

struct doorbell {
	int fd;
	struct event *ev;
	void (*fn)(void *arg);          /* on the loop, after each ring */
	void *arg;
	const char *who;                /* names the owner in logged errors */
};

/* Arm d on base. 0 or a negative errno; doorbell_fini is safe either way. */
int doorbell_init(struct doorbell *d, struct event_base *base, const char *who,
		  void (*fn)(void *arg), void *arg);
/* From any thread. */
void doorbell_ring(struct doorbell *d);
void doorbell_fini(struct doorbell *d);

#endif
