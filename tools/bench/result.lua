-- result.lua: the RESULT line every wrk script of the benches prints from done(), which the
-- runners parse (field NAME): latencies in microseconds.
--   RESULT requests=N seconds=S rps=R p50=U p90=U p99=U max=U errors=E status=X bad=B
-- errors: socket errors and timeouts; status: HTTP answers other than 2xx/3xx; bad: the sum
-- of each thread's global `bad` (answers the script's response() judged wrong).
-- Load it with: local result = dofile(<this directory> .. "result.lua")
return function(summary, latency, threads)
	local e = summary.errors
	local secs = summary.duration / 1e6
	local refused = 0
	for _, t in ipairs(threads) do refused = refused + t:get("bad") end
	io.write(string.format(
		"RESULT requests=%d seconds=%.3f rps=%.1f p50=%d p90=%d p99=%d max=%d errors=%d status=%d bad=%d\n",
		summary.requests, secs, summary.requests / secs,
		latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
		e.connect + e.read + e.write + e.timeout, e.status, refused))
end
