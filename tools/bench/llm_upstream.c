/* llm_upstream: a small, fast OpenAI-compatible provider, the upstream of the LLM route
 * benchmark (tools/bench/llm_bench.sh). It must cost as little as possible so that what the
 * benchmark measures is the proxy in front of it.
 *
 *   llm_upstream PORT        (0 picks a free port; the chosen one is printed on stdout)
 *
 * POST .../chat/completions answers one fixed chat.completion with usage (application/json,
 * keep-alive); anything else is 404.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

static const char answer[] =
	"{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"bench\","
	"\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello there\"},"
	"\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":20,"
	"\"total_tokens\":30}}";

static void on_request(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	size_t n = uri ? strlen(uri) : 0;
	struct evbuffer *out;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST || n < 17 ||
	    strcmp(uri + n - 17, "/chat/completions")) {
		evhttp_send_reply(req, 404, "Not Found", NULL);
		return;
	}
	out = evhttp_request_get_output_buffer(req);
	evbuffer_add_reference(out, answer, sizeof(answer) - 1, NULL, NULL);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", NULL);
}

int main(int argc, char **argv)
{
	struct event_base *base = event_base_new();
	struct evhttp *http = base ? evhttp_new(base) : NULL;
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	if (argc != 2 || !http) {
		fprintf(stderr, "usage: llm_upstream PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	evhttp_set_gencb(http, on_request, NULL);
	bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)atoi(argv[1]));
	if (!bs || getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &len)) {
		fprintf(stderr, "llm_upstream: cannot listen\n");
		return 1;
	}
	printf("%d\n", ntohs(sa.sin_port));
	fflush(stdout);
	event_base_dispatch(base);
	evhttp_free(http);
	event_base_free(base);
	return 0;
}
