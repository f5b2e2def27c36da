// A local model provider for the LLM route's tests: OpenAI's /v1/chat/completions and
// /v1/embeddings, and Anthropic's /v1/messages, on a free loopback port. It checks what it
// receives (the provider key it was given, a JSON body) and keeps every request for the test
// to inspect. The model name picks the behaviour:
//   any listed model       an answer with usage {prompt_tokens: 10, completion_tokens: 20}
//   "slow"                 the same after `delayMs` (default 300)
//   "hang"                 never answers
//   "reset"                (stream) one chunk, then the connection is cut
//   "garbage"              200 with a body (or an event) that is not JSON
//   "fail500"              HTTP 500 with an OpenAI error
//   "gpt-tools"            (with tools) a tool call of the first tool offered, id "call_1"
import { createServer } from 'node:http';

export const USAGE = { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 };

/** Answer with an Anthropic event stream; returns ev(type, fields), which writes one event. */
function eventStream(res) {
	res.writeHead(200, { 'content-type': 'text/event-stream' });
	return (type, o) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...o })}\n\n`);
}

export async function startProvider({ key = 'sk-provider-secret', kind = 'openai', delayMs = 300 } = {}) {
	const seen = [];
	const sockets = new Set();
	const server = createServer((req, res) => {
		let body = '';
		req.on('data', (c) => { body += c; });
		req.on('end', () => handle(req, res, body));
	});
	server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });

	function chunk(model, delta, finish = null) {
		return { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model,
			choices: [{ index: 0, delta, finish_reason: finish }] };
	}

	function handle(req, res, text) {
		let body = null;
		try { body = JSON.parse(text); } catch { /* kept as null */ }
		const entry = { method: req.method, url: req.url, headers: req.headers, text, body };
		seen.push(entry);
		const authOk = kind === 'anthropic' ? req.headers['x-api-key'] === key
			: req.headers.authorization === `Bearer ${key}`;
		if (!authOk || !body) {
			res.writeHead(authOk ? 400 : 401, { 'content-type': 'application/json' });
			res.end(JSON.stringify({ error: { message: authOk ? 'bad json' : 'bad provider key',
				type: 'invalid_request_error' } }));
			return;
		}
		const model = body.model;
		if (model === 'hang')
			return;
		if (model === 'fail500') {
			res.writeHead(500, { 'content-type': 'application/json' });
			res.end(JSON.stringify({ error: { message: 'provider exploded', type: 'server_error' } }));
			return;
		}
		const go = () => (kind === 'anthropic' ? anthropic(req, res, body) : openai(req, res, body));
		if (model === 'slow')
			setTimeout(go, delayMs);
		else
			go();
	}

	function openai(req, res, body) {
		const model = body.model;
		if (req.url === '/v1/embeddings') {
			res.writeHead(200, { 'content-type': 'application/json' });
			res.end(JSON.stringify({ object: 'list', model,
				data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }],
				usage: { prompt_tokens: 8, total_tokens: 8 } }));
			return;
		}
		if (model === 'gpt-tools' && body.tools?.length && !body.stream) {
			res.writeHead(200, { 'content-type': 'application/json' });
			res.end(JSON.stringify({ id: 'chatcmpl-2', object: 'chat.completion', created: 1, model,
				choices: [{ index: 0, finish_reason: 'tool_calls', message: { role: 'assistant',
					content: null, tool_calls: [{ id: 'call_1', type: 'function', function: {
						name: body.tools[0].function.name, arguments: '{}' } }] } }],
				usage: USAGE }));
			return;
		}
		if (!body.stream) {
			res.writeHead(200, { 'content-type': 'application/json' });
			if (model === 'garbage') {
				res.end('this is not json');
				return;
			}
			res.end(JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', created: 1, model,
				choices: [{ index: 0, message: { role: 'assistant', content: 'Hello there' },
					finish_reason: 'stop' }], usage: USAGE }));
			return;
		}
		res.writeHead(200, { 'content-type': 'text/event-stream' });
		const send = (o) => res.write(`data: ${typeof o === 'string' ? o : JSON.stringify(o)}\n\n`);
		if (model === 'garbage') {
			send('{{{ not json');
			res.end();
			return;
		}
		send(chunk(model, { role: 'assistant', content: '' }));
		send(chunk(model, { content: 'Hel' }));
		if (model === 'reset') {
			setTimeout(() => res.socket.destroy(), 50);
			return;
		}
		setTimeout(() => {
			send(chunk(model, { content: 'lo' }));
			send(chunk(model, {}, 'stop'));
			if (body.stream_options?.include_usage)
				send({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model,
					choices: [], usage: USAGE });
			send('[DONE]');
			res.end();
		}, 30);
	}

	// An Anthropic stream of one content block: message_start with message, the block (a ping
	// after it if asked), its deltas, its stop, then stop_reason with 20 output tokens.
	function oneBlockStream(res, message, block, deltas, stopReason, { ping = false } = {}) {
		const ev = eventStream(res);
		ev('message_start', { message });
		ev('content_block_start', { index: 0, content_block: block });
		if (ping)
			ev('ping', {});
		for (const delta of deltas)
			ev('content_block_delta', { index: 0, delta });
		ev('content_block_stop', { index: 0 });
		ev('message_delta', { delta: { stop_reason: stopReason }, usage: { output_tokens: 20 } });
		ev('message_stop', {});
		res.end();
	}

	function anthropic(req, res, body) {
		if (req.url !== '/v1/messages') {
			res.writeHead(404).end();
			return;
		}
		const tool = body.tools?.[0]?.name;
		if (tool && !body.stream) {
			res.writeHead(200, { 'content-type': 'application/json' });
			res.end(JSON.stringify({ id: 'msg_2', type: 'message', role: 'assistant', model: body.model,
				content: [{ type: 'text', text: 'Let me check' },
					{ type: 'tool_use', id: 'toolu_1', name: tool, input: { city: 'Paris' } }],
				stop_reason: 'tool_use', usage: { input_tokens: 10, output_tokens: 20 } }));
			return;
		}
		if (tool) {
			oneBlockStream(res, { id: 'msg_3', usage: { input_tokens: 10, output_tokens: 1 } },
				{ type: 'tool_use', id: 'toolu_2', name: tool, input: {} },
				[{ type: 'input_json_delta', partial_json: '{"city":' },
					{ type: 'input_json_delta', partial_json: '"Rome"}' }], 'tool_use');
			return;
		}
		if (!body.stream) {
			res.writeHead(200, { 'content-type': 'application/json' });
			res.end(JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant',
				model: body.model, content: [{ type: 'text', text: 'Hello there' }],
				stop_reason: 'end_turn', usage: { input_tokens: 10, output_tokens: 20 } }));
			return;
		}
		oneBlockStream(res, { id: 'msg_1', type: 'message', role: 'assistant', content: [],
			model: body.model, usage: { input_tokens: 10, output_tokens: 1 } },
		{ type: 'text', text: '' },
		[{ type: 'text_delta', text: 'Hel' }, { type: 'text_delta', text: 'lo' }], 'end_turn', { ping: true });
	}

	await new Promise((r) => server.listen(0, '127.0.0.1', r));
	const { port } = server.address();
	return {
		url: `http://127.0.0.1:${port}/v1`,
		seen,
		async close() {
			for (const s of sockets)
				s.destroy();
			await new Promise((r) => server.close(r));
		},
	};
}
