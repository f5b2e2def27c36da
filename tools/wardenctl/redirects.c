/* The redirect table (warden_redirect): which redirected connections the kernel remembers,
 * from which cgroup, to which original destination. Shown by 'maps' and 'identities'. */
#include "wardenctl.h"

#include "enforce/cgroup.h"

static void orig_text(const struct warden_redirect *r, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char a[INET6_ADDRSTRLEN] = "?";

	if (enforcer_redirect_sockaddr(r, &ss, &sl) < 0)
		snprintf(buf, len, "?");
	else if (ss.ss_family == AF_INET)
		snprintf(buf, len, "%s:%u", inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
						      a, sizeof(a)) ? a : "?", ntohs(r->port));
	else
		snprintf(buf, len, "[%s]:%u", inet_ntop(AF_INET6,
			 &((struct sockaddr_in6 *)&ss)->sin6_addr, a, sizeof(a)) ? a : "?",
			 ntohs(r->port));
}

int ctl_redirect_table(const struct pins *p, const char *cgroot, cJSON *json_parent)
{
	struct pins_redirect *rd = NULL;
	struct pins_map_info mi;
	size_t n = 0;
	cJSON *arr = NULL;
	int err = pins_redirects(p, &rd, &n);

	if (err < 0)
		return err;
	pins_map_info(p, PINS_REDIRECT, &mi);
	if (json_parent)
		arr = cJSON_AddArrayToObject(json_parent, WARDEN_MAP_REDIRECT);
	else
		printf("\n%s: redirected connections the kernel remembers (%zu of %u, least "
		       "recently used dropped first)\n", WARDEN_MAP_REDIRECT, n, mi.max_entries);
	if (!json_parent && n)
		printf("  %-20s %-6s %-32s %s\n", "SOCKET COOKIE", "RULE", "ORIGINAL DESTINATION",
		       "CGROUP");
	for (size_t i = 0; i < n; i++) {
		char d[80], path[PATH_MAX];
		bool named = cgroot && cgroup_path_of(cgroot, rd[i].r.cgroup_id, path,
						      sizeof(path)) == 0;

		orig_text(&rd[i].r, d, sizeof(d));
		if (json_parent) {
			cJSON *e = cJSON_CreateObject();

			if (!e || !cJSON_AddItemToArray(arr, e)) {
				cJSON_Delete(e);
				err = -ENOMEM;
				break;
			}
			cJSON_AddNumberToObject(e, "cookie", (double)rd[i].cookie);
			cJSON_AddNumberToObject(e, "rule_id", rd[i].r.rule_id);
			cJSON_AddStringToObject(e, "original_destination", d);
			cJSON_AddNumberToObject(e, "cgroup_id", (double)rd[i].r.cgroup_id);
			if (named)
				cJSON_AddStringToObject(e, "cgroup", path);
			else
				cJSON_AddNullToObject(e, "cgroup");
		} else {
			printf("  %-20" PRIu64 " %-6u %-32s %s\n", rd[i].cookie, rd[i].r.rule_id, d,
			       named ? path : "(gone)");
		}
	}
	free(rd);
	return err;
}
