-- wrk script: non-streamed chat completion through a peer that wants the master key.
-- wrk -t1 -c16 -d10s --latency -s docs/peers/wrk-chat.lua http://127.0.0.1:4000/v1/chat/completions
-- Set STREAM=1 in the environment for a streamed request with usage.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-gatebench-1234"
if os.getenv("STREAM") == "1" then
  wrk.body = '{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'
else
  wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
end
