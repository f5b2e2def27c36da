/* names: how upstream names are exposed to agents and routed back.
 *
 * Tools and prompts: "<server>__<name>"; resource URIs and URI templates: "<server>+<uri>".
 * Server names are [a-z0-9-]{1,32}, so neither separator can occur inside one and the first
 * separator always ends the server part.
 */
#ifndef WARDEN_NAMES_H
#define WARDEN_NAMES_H

#include <stdbool.h>
#include <stddef.h>

enum names_form { NAMES_NAME, NAMES_URI };

/* "<server>__<name>" or "<server>+<uri>" (caller frees); NULL on ENOMEM. */
char *names_expose(const char *server, enum names_form form, const char *name);
/* Split an exposed name: copies the server part into server (>= 33 bytes) and points *rest
 * at the upstream's own name. -ENOENT when it has no valid server prefix. */
int names_split(const char *exposed, enum names_form form, char *server, const char **rest);
/* RFC 6570 level 1-2 matching of a URI against a template: {var} matches one or more
 * characters other than '/', {+var} anything non-empty. */
bool names_template_match(const char *tmpl, const char *uri);

#endif
