/* json_keys: objects whose member names repeat.
 *
 * RFC 8259 leaves a repeated name's meaning to each parser: cJSON reads the first one, most
 * MCP servers (JavaScript, Python) the last. A gateway that judged one value and forwarded
 * both would let an agent pass policy and argument validation with one value and give the
 * tool the other, so what an agent sends is refused when any object in it repeats a name. */
#ifndef WARDEN_JSON_KEYS_H
#define WARDEN_JSON_KEYS_H

#include <cjson/cJSON.h>

/* NULL when every object in v (at any depth) has distinct member names; else the first
 * repeated name found (it points into v). */
const char *json_repeated_key(const cJSON *v);

#endif
