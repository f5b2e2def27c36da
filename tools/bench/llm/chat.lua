-- wrk script for the LLM route benchmark: one chat completion per request.
--   LLM_KEY   the API key (sent as Authorization: Bearer)   LLM_PATH  /v1/chat/completions
--   LLM_MODEL the model name
-- done() prints: RESULT requests=N seconds=S rps=R p50=U p90=U p99=U max=U errors=E status=X bad=B
-- (latencies in microseconds; bad: answers that are not a 200 with choices).
local key = os.getenv("LLM_KEY") or ""
local path = os.getenv("LLM_PATH") or "/v1/chat/completions"
local model = os.getenv("LLM_MODEL") or "bench"
local headers = { ["Content-Type"] = "application/json" }
if key ~= "" then headers["Authorization"] = "Bearer " .. key end
local body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"hello from wrk"}],"max_tokens":50}'

-- The RESULT line: tools/bench/result.lua, found from this script's own path.
local result = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "../result.lua")
local threads = {}
bad = 0

function setup(thread) table.insert(threads, thread) end

function request() return wrk.format("POST", path, headers, body) end

function response(status, hdrs, b)
	if status ~= 200 or not b:find('"choices"', 1, true) then bad = bad + 1 end
end

function done(summary, latency, requests) result(summary, latency, threads) end
