/* fleet_int.h: what fleet.c (Redis connection and scripts) and fleet_config.c (the "counters"
 * section, key naming) share. Private to the two. */
#ifndef WARDEN_FLEET_INT_H
#define WARDEN_FLEET_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "govern/fleet.h"

#define FLEET_MAX_SENTINELS 8

struct fleet_addr {
	char *host;                     /* NULL: unix socket in path */
	char *path;
	int port;
};

struct fleet_config {
	struct fleet_addr addr;         /* the server, when no sentinel */
	int db;
	char *password;                 /* NULL: no AUTH */
	char *prefix;
	int64_t connect_timeout_ms, command_timeout_ms, resv_ttl_s;
	bool fail_closed;
	int64_t local_spend, local_calls;       /* per key, per outage */
	char *sentinel_master;
	struct fleet_addr sentinels[FLEET_MAX_SENTINELS];
	size_t nsentinels;
};

#endif
