# Shared by the moe serve tests (tests/cli/serve_*.sh), sourced after
# lib.bash: a tiny model to serve, random keys, a server started on a free
# port and stopped or killed. The EXIT trap kills a server still running.
SERVE_PID=""
trap 'serve_kill; rm -rf "$WORK"' EXIT

# serve_tiny_model: trains configs/tiny.json for 20 steps (a few seconds);
# prints its best checkpoint folder.
serve_tiny_model() {
  $MOE train --config configs/tiny.json --set out_dir="$WORK/runs" --set train.steps=20 \
    --set train.eval_every=0 --set train.sample_tokens=0 --quiet >"$WORK/train.log" 2>&1 ||
    fail "training the tiny model failed: $(cat "$WORK/train.log")"
  ls -d "$WORK"/runs/tiny-*/checkpoints/best
}

# random_key: 32 random hex digits (MOE_API_KEYS wants 16 characters or more).
random_key() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# serve_start ARGS...: `moe serve --port 0 --port-file F ARGS` in the
# background, stderr appended to $WORK/server.log; waits up to 20 s for the
# port (sanitizer builds start slowly). Sets SERVE_PID, PORT and URL.
serve_start() {
  rm -f "$WORK/port"
  $MOE serve --port 0 --port-file "$WORK/port" "$@" 2>>"$WORK/server.log" &
  SERVE_PID=$!
  for _ in $(seq 400); do
    [ -s "$WORK/port" ] && break
    kill -0 "$SERVE_PID" 2>/dev/null || fail "moe serve exited: $(cat "$WORK/server.log")"
    sleep 0.05
  done
  [ -s "$WORK/port" ] || fail "moe serve wrote no port file in 20 s: $(cat "$WORK/server.log")"
  PORT=$(cat "$WORK/port")
  URL="http://127.0.0.1:$PORT"
}

# serve_stop [SECONDS]: SIGTERM; the server must exit 0 within SECONDS (30).
serve_stop() {
  kill -TERM "$SERVE_PID"
  for _ in $(seq $((${1:-30} * 20))); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$SERVE_PID" 2>/dev/null && fail "moe serve still runs ${1:-30} s after SIGTERM"
  local rc=0
  wait "$SERVE_PID" || rc=$?
  SERVE_PID=""
  [ "$rc" = 0 ] || fail "moe serve exited $rc after SIGTERM: $(tail -n 5 "$WORK/server.log")"
}

# api METHOD PATH [BODY]: one request with $KEY (a JSON body when given);
# prints the HTTP status, the answer lands in $WORK/resp.
api() {
  local args=(-sS -o "$WORK/resp" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $KEY")
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data "$3")
  curl "${args[@]}" "$URL$2"
}

# serve_kill: SIGKILL the server if it runs (the trap; simulated crashes).
serve_kill() {
  if [ -n "$SERVE_PID" ]; then
    kill -9 "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
  fi
  SERVE_PID=""
}
