-- wrk script for the proxy benchmark: tools/call "echo" on one MCP session, a fresh JSON-RPC id
-- per request. The runner (tools/bench/proxy_bench.sh) opens the session with curl and passes:
--   MCP_SESSION  the Mcp-Session-Id, or several separated by commas: wrk's thread i (-t) uses
--                the i-th (workers: N, a session on each loop; a thread's connections all
--                go to its session's loop)
--   MCP_KEY  the API key (empty: no Authorization)
--   MCP_PATH     the endpoint path (/mcp)
--   MCP_TEXT_BYTES  the echo's text: 0 or unset "hello from wrk", else that many bytes of
--                   words (the upstream answers it back: a tool's larger answer)
-- done() prints one line the runner parses, latencies in microseconds:
--   RESULT requests=N seconds=S rps=R p50=U p90=U p99=U max=U errors=E status=X bad=B
-- errors: socket errors and timeouts; status: HTTP answers other than 2xx/3xx; bad: answers
-- that are not a 200 with a JSON-RPC result (a refusal arrives as a 200 with an error).
local session = os.getenv("MCP_SESSION") or ""
local key = os.getenv("MCP_KEY") or ""
local path = os.getenv("MCP_PATH") or "/mcp"
local text_bytes = tonumber(os.getenv("MCP_TEXT_BYTES") or "0") or 0
local text = "hello from wrk"
if text_bytes > 0 then
	text = string.rep("lorem ipsum dolor sit amet, ", math.floor(text_bytes / 28) + 1):sub(1, text_bytes)
end

local headers = {
	["Content-Type"] = "application/json",
	["Accept"] = "application/json, text/event-stream",
	["MCP-Protocol-Version"] = "2025-06-18",
}
if key ~= "" then headers["Authorization"] = "Bearer " .. key end

-- The RESULT line: tools/bench/result.lua, found from this script's own path.
local result = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "../result.lua")
local threads = {}
local seq = 0
tid, bad = 0, 0     -- globals: setup() sets tid in each thread, done() reads bad from each

local sessions = {}
for s in session:gmatch("[^,]+") do table.insert(sessions, s) end
thread_session = nil    -- global: setup() sets it in each thread

function setup(thread)
	thread:set("tid", #threads)
	thread:set("thread_session", sessions[#threads % math.max(#sessions, 1) + 1] or "")
	table.insert(threads, thread)
end

function init(args)
	headers["Mcp-Session-Id"] = thread_session or session
end

function request()
	seq = seq + 1
	local body = '{"jsonrpc":"2.0","id":' .. (tid * 1000000000 + seq) ..
		',"method":"tools/call","params":{"name":"echo","arguments":{"text":"' .. text .. '"}}}'
	return wrk.format("POST", path, headers, body)
end

-- A 200 that carries a JSON-RPC error (a refusal) is a failure too: count those as errors.
function response(status, hdrs, body)
	if status ~= 200 or not body:find('"result"', 1, true) then bad = bad + 1 end
end

function done(summary, latency, requests) result(summary, latency, threads) end
