#!/usr/bin/env bash
# inbound against its peers on this machine, in one run (issue #17): npm `oidc-provider`
# (benches/peer-oidc-provider.mjs, configured as the quickstart is for these flows) and
# nginx serving inbound's JWKS as a static file (the cost of the smallest HTTP exchange
# here). Each server runs alone, pinned to CPU 0 with one thread of work (inbound: one
# runtime worker; Node: its one event loop; nginx: one worker); wrk runs on CPU 1 over
# keep-alive. Scenarios, at 16 and 64 connections:
#   client_credentials  an ES256 JWT access token for https://billing.example.com
#   introspection       of an opaque token (200 distinct ones in rotation), by its client
#   JWKS                the signing keys (nginx: the same bytes inbound serves)
#   discovery           the OpenID Provider metadata (inbound and oidc-provider)
#   jwt_bearer          RFC 7523: a trusted issuer's ES256 assertion for an ES256 JWT (inbound)
#   token_exchange      RFC 8693: the same JWT as subject_token, for a delegated ES256 JWT
#                       (inbound; oidc-provider implements neither grant)
# Each point is run RUNS times; the table shows the medians of requests/s, p50 and p99 and
# the spread (max-min)/median of the requests/s, the ratios against the floors, then the
# issue's targets, met or not. The raw ES256 signing rate on CPU 0 (benches/sign_rate.rs)
# makes the client_credentials floor 1/(1/sign_rate + 1/nginx_rps); with the raw ES256
# verification rate (benches/verify_rate.rs), the two grants that verify a JWT first have the
# floor 1/(1/sign_rate + 1/verify_rate + 1/nginx_rps).
#
#   make bench-peers                   # 8 s per run, 3 runs per point
#   DURATION=3s RUNS=1 make bench-peers
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-8s}
RUNS=${RUNS:-3}
PORT=${PORT:-18951}
PEER_PORT=${PEER_PORT:-18952}
NGINX_PORT=${NGINX_PORT:-18953}
CONNS=(16 64)
RESOURCE=https://billing.example.com
SCOPE=billing:read
OIDC_PROVIDER_DIR=${INBOUND_OIDC_PROVIDER_DIR:-$HOME/.cache/inbound/oidc-provider}
export INBOUND_OIDC_PROVIDER_DIR=$OIDC_PROVIDER_DIR

# --- tools -------------------------------------------------------------------------------
need wrk
need taskset util-linux
[ -x /usr/sbin/nginx ] || apt_install nginx-light
command -v node >/dev/null || apt_install nodejs npm
[ "$(nproc)" -ge 2 ] || die "needs two CPUs (servers on CPU 0, wrk on CPU 1)"
bash scripts/oidc-provider-env.sh >&2

say "building the release server and the signing and verification benches"
build_release
sign_bin=$(bench_bin sign_rate)
[ -x "$sign_bin" ] || die "the sign_rate bench did not build"
verify_bin=$(bench_bin verify_rate)
[ -x "$verify_bin" ] || die "the verify_rate bench did not build"

# --- processes ---------------------------------------------------------------------------
bench_work
# What nginx serves: its worker runs as another user (nobody) when started by root, so a
# folder of its own that it may read; the work folder (credentials) stays private.
www=$(mktemp -d)
chmod 755 "$www"
cleanup_peers() {
  # nginx's worker, should its master have gone without it.
  if [ -s "$work/nginx-worker.pid" ]; then kill "$(cat "$work/nginx-worker.pid")" 2>/dev/null || true; fi
  rm -rf "$www"
}
cleanup_hooks+=(cleanup_peers)

cc_body="grant_type=client_credentials&scope=$SCOPE&resource=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$RESOURCE")"

# A token response that must be an ES256 JWT for the resource.
check_jwt() { # $1 name, $2 token response
  python3 -c 'import base64,json,sys
name, resource, body = sys.argv[1:]
try:
    token = json.loads(body)["access_token"]
    seg = lambda s: json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    header, claims = seg(token.split(".")[0]), seg(token.split(".")[1])
except Exception as e:
    sys.exit("bench-peers: %s answered no JWT access token (%s): %s" % (name, e, body[:300]))
aud = claims.get("aud"); aud = aud if isinstance(aud, list) else [aud]
if header.get("alg") != "ES256" or resource not in aud:
    sys.exit("bench-peers: %s: the token is not an ES256 JWT for %s: %s %s" % (name, resource, header, claims))' "$1" "$RESOURCE" "$2"
}
# 200 distinct opaque tokens, as an API sees many callers, checked through introspection.
mint_opaque() { # $1 name, $2 token url, $3 Basic, $4 introspection url; writes $work/tokens.lua
  local t
  : >"$work/tokens.lua"
  for _ in $(seq 200); do
    t=$(curl -sS -f -H "Authorization: Basic $3" -d "grant_type=client_credentials&scope=$SCOPE" "$2" | json access_token) ||
      die "$1 refused an opaque client_credentials token"
    case $t in *.*.*) die "$1 issued a JWT where an opaque token was asked for" ;; esac
    printf '"%s",\n' "$t" >>"$work/tokens.lua"
  done
  curl -sS -f -H "Authorization: Basic $3" --data-urlencode "token=$t" "$4" | grep -q '"active":true' ||
    die "$1 does not describe its opaque token as active"
}

printf '%s\n' "$done_lua" >"$work/get.lua"

: >"$work/results"
measure() { # $1 server, $2 scenario, $3 wrk script, $4 url
  local c r out line
  for c in "${CONNS[@]}"; do
    for r in $(seq "$RUNS"); do
      out=$(taskset -c 1 wrk -t1 -c"$c" -d"$DURATION" --timeout 5s -s "$3" "$4" 2>&1) || die "wrk failed on $4: $out"
      line=$(grep '^RESULT' <<<"$out") || die "wrk printed no result for $4: $out"
      kill -0 "$server_pid" 2>/dev/null || die "$1 died during $2"
      say "$1 $2 c=$c run $r: ${line#RESULT }"
      echo "$1 $2 $c $r ${line#RESULT }" >>"$work/results"
    done
  done
}

# --- the signing floor, CPU 0 idle of our servers ----------------------------------------
sign_rate=$(taskset -c 0 "$sign_bin" | awk '/sign_rate/ {print $2}')
[ -n "$sign_rate" ] || die "sign_rate printed nothing"
say "raw ES256 signing rate on CPU 0: $sign_rate/s"
# A CI issuer's key pair and an assertion from it for inbound (valid 50 min).
mkdir -p "$work/ci-issuer"
verify_rate=$(taskset -c 0 "$verify_bin" https://ci.example.com "http://127.0.0.1:$PORT" "$work/ci-issuer" |
  awk '/verify_rate/ {print $2}')
[ -n "$verify_rate" ] || die "verify_rate printed nothing"
say "raw ES256 verification rate on CPU 0: $verify_rate/s"

# --- inbound -----------------------------------------------------------------------------
port_free "$PORT" || die "port $PORT is taken (PORT=...)"
cp -r examples/quickstart "$work/config"
# An app like billing-agent whose tokens are opaque (the quickstart's reporting-job
# authenticates with client_secret_post; oidc-provider's client uses client_secret_basic).
cat >"$work/config/bench-peers.yaml" <<YAML
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: bench-opaque, namespace: default}
spec:
  displayName: Bench opaque
  clientType: confidential
  grantTypes: [client_credentials]
  tokenEndpointAuthMethod: client_secret_basic
  allowedResources: ["$RESOURCE"]
  tokens: {format: opaque, accessTokenLifetime: 10m}
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: bench-opaque, namespace: default}
spec:
  subject: {kind: InboundApp, name: bench-opaque}
  scopes: [$SCOPE]
  resources: ["$RESOURCE"]
YAML
# A CI system's JWTs, for the JWT bearer grant and as token exchange subject tokens.
ci_deployer_manifests "$work/ci-issuer" >"$work/config/ci-deployer.yaml"
say "inbound on 127.0.0.1:$PORT"
start_inbound "$PORT" "$work/inbound.log"
wait_ready inbound "http://127.0.0.1:$PORT/readyz" "$work/inbound.log"
base="http://127.0.0.1:$PORT"
curl -sS -f "$base/.well-known/openid-configuration" >"$work/inbound-discovery.json"
token_url=$(json token_endpoint <"$work/inbound-discovery.json")
introspect_url=$(json introspection_endpoint <"$work/inbound-discovery.json")
jwks_url=$(json jwks_uri <"$work/inbound-discovery.json")
cc_basic=$(client_basic billing-agent)
op_basic=$(client_basic bench-opaque)
check_jwt inbound "$(curl -sS -H "Authorization: Basic $cc_basic" -d "$cc_body" "$token_url")"
mint_opaque inbound "$token_url" "$op_basic" "$introspect_url"
curl -sS -f -o "$www/jwks.json" "$jwks_url"
chmod 644 "$www/jwks.json"
curl -sS -f -o /dev/null "$jwks_url" -D - | grep -i '^content-type:' | tr -d '\r' >"$work/jwks-type"
post_lua "$cc_body" "$cc_basic" >"$work/cc.lua"
introspect_lua "$op_basic" "$work/tokens.lua" >"$work/introspect.lua"
ci_basic=$(client_basic ci-deployer)
assertion=$(cat "$work/ci-issuer/assertion")
jwt_bearer_body="grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=$assertion"
exchange_body="grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=$assertion"
exchange_body+="&subject_token_type=urn:ietf:params:oauth:token-type:jwt"
check_jwt "inbound (jwt-bearer)" "$(curl -sS -H "Authorization: Basic $ci_basic" -d "$jwt_bearer_body" "$token_url")"
check_jwt "inbound (token exchange)" "$(curl -sS -H "Authorization: Basic $ci_basic" -d "$exchange_body" "$token_url")"
post_lua "$jwt_bearer_body" "$ci_basic" >"$work/jwt-bearer.lua"
post_lua "$exchange_body" "$ci_basic" >"$work/exchange.lua"
measure inbound client_credentials "$work/cc.lua" "$token_url"
measure inbound jwt_bearer "$work/jwt-bearer.lua" "$token_url"
measure inbound token_exchange "$work/exchange.lua" "$token_url"
measure inbound introspection "$work/introspect.lua" "$introspect_url"
measure inbound jwks "$work/get.lua" "$jwks_url"
measure inbound discovery "$work/get.lua" "$base/.well-known/openid-configuration"
stop_server

# --- oidc-provider -----------------------------------------------------------------------
port_free "$PEER_PORT" || die "port $PEER_PORT is taken (PEER_PORT=...)"
peer_id=bench-client
peer_secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
cat >"$work/peer.json" <<JSON
{"port": $PEER_PORT, "clientId": "$peer_id", "clientSecret": "$peer_secret",
 "resource": "$RESOURCE", "scope": "$SCOPE"}
JSON
say "oidc-provider $(node -p "require('$OIDC_PROVIDER_DIR/node_modules/oidc-provider/package.json').version") on 127.0.0.1:$PEER_PORT (Node $(node --version))"
NODE_ENV=production OIDC_PROVIDER_DIR=$OIDC_PROVIDER_DIR taskset -c 0 node benches/peer-oidc-provider.mjs "$work/peer.json" \
  >"$work/peer.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$PEER_PORT"
wait_ready oidc-provider "$base/.well-known/openid-configuration" "$work/peer.log"
curl -sS -f "$base/.well-known/openid-configuration" >"$work/peer-discovery.json"
token_url=$(json token_endpoint <"$work/peer-discovery.json")
introspect_url=$(json introspection_endpoint <"$work/peer-discovery.json")
jwks_url=$(json jwks_uri <"$work/peer-discovery.json")
peer_basic=$(basic "$peer_id" "$peer_secret")
check_jwt oidc-provider "$(curl -sS -H "Authorization: Basic $peer_basic" -d "$cc_body" "$token_url")"
curl -sS -f "$jwks_url" | grep -q '"ES256"' || die "oidc-provider's JWKS has no ES256 key"
post_lua "$cc_body" "$peer_basic" >"$work/cc.lua"
measure oidc-provider client_credentials "$work/cc.lua" "$token_url"
# Minted after the JWT load: its in-memory adapter is an LRU of 1000 entries.
mint_opaque oidc-provider "$token_url" "$peer_basic" "$introspect_url"
introspect_lua "$peer_basic" "$work/tokens.lua" >"$work/introspect.lua"
measure oidc-provider introspection "$work/introspect.lua" "$introspect_url"
measure oidc-provider jwks "$work/get.lua" "$jwks_url"
measure oidc-provider discovery "$work/get.lua" "$base/.well-known/openid-configuration"
grep -q server_error "$work/peer.log" && { say "oidc-provider logged server errors:"; grep -m5 -A3 server_error "$work/peer.log" >&2; }
stop_server

# --- nginx: inbound's JWKS bytes as a static file -----------------------------------------
port_free "$NGINX_PORT" || die "port $NGINX_PORT is taken (NGINX_PORT=...)"
mkdir -p "$work/nginx-tmp"
jwks_type=$(sed 's/^[^:]*: *//' "$work/jwks-type"); [ -n "$jwks_type" ] || jwks_type=application/json
cat >"$work/nginx.conf" <<NGINX
daemon off;
master_process on;
worker_processes 1;
worker_cpu_affinity 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_timeout 65s;
  keepalive_requests 100000000;
  sendfile on;
  tcp_nodelay on;
  # The file's descriptor kept open, as any tuned static server does: without it nginx opens,
  # stats and closes the file per request (53k/s against 79k/s here), a cost that is not the
  # HTTP exchange's.
  open_file_cache max=16 inactive=1h;
  open_file_cache_valid 1h;
  client_body_temp_path $work/nginx-tmp/body;
  proxy_temp_path $work/nginx-tmp/proxy;
  fastcgi_temp_path $work/nginx-tmp/fastcgi;
  uwsgi_temp_path $work/nginx-tmp/uwsgi;
  scgi_temp_path $work/nginx-tmp/scgi;
  types { }
  default_type "$jwks_type";
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $www;
    location = /jwks.json { }
    location / { return 404; }
  }
}
NGINX
say "nginx $(/usr/sbin/nginx -v 2>&1 | sed 's|.*/||') on 127.0.0.1:$NGINX_PORT"
/usr/sbin/nginx -t -q -c "$work/nginx.conf" -e "$work/nginx-error.log" -p "$work" ||
  { cat "$work/nginx-error.log" >&2; die "the nginx configuration is refused"; }
taskset -c 0 /usr/sbin/nginx -c "$work/nginx.conf" -e "$work/nginx-error.log" -p "$work" >"$work/nginx.log" 2>&1 &
server_pid=$!
jwks_url="http://127.0.0.1:$NGINX_PORT/jwks.json"
wait_ready nginx "$jwks_url" "$work/nginx-error.log"
pgrep -P "$server_pid" >"$work/nginx-worker.pid" || true
curl -sS -f "$jwks_url" | cmp -s - "$www/jwks.json" || die "nginx does not serve inbound's JWKS bytes"
measure nginx jwks "$work/get.lua" "$jwks_url"
stop_server
# The master ends its worker; should it not have, the worker goes too.
for _ in $(seq 50); do
  [ -s "$work/nginx-worker.pid" ] && kill -0 "$(cat "$work/nginx-worker.pid")" 2>/dev/null || break
  sleep 0.1
done
if [ -s "$work/nginx-worker.pid" ]; then kill "$(cat "$work/nginx-worker.pid")" 2>/dev/null || true; fi
rm -f "$work/nginx-worker.pid"

# --- the table ---------------------------------------------------------------------------
python3 - "$work/results" "$sign_rate" "$verify_rate" "$DURATION" "$RUNS" "${CONNS[@]}" <<'PY'
import statistics as st, sys
path, sign_rate, verify_rate, duration, runs, *conns = sys.argv[1:]
sign_rate, verify_rate = float(sign_rate), float(verify_rate); conns = [int(c) for c in conns]
raw = {}
for line in open(path):
    server, scenario, c, _run, _total, errors, rps, p50, p99 = line.split()
    raw.setdefault((server, scenario, int(c)), []).append((float(rps), float(p50), float(p99), int(errors)))

def point(server, scenario, c):
    runs_ = raw.get((server, scenario, c))
    if not runs_:
        return None
    rps = [r[0] for r in runs_]
    med = st.median(rps)
    return dict(rps=med, p50=st.median(r[1] for r in runs_), p99=st.median(r[2] for r in runs_),
                spread=(max(rps) - min(rps)) / med if med else 0.0, errors=sum(r[3] for r in runs_))

def cell(p, spread=False):
    if p is None:
        return ["–"] * (4 if spread else 3)
    rps = "%.0f" % p["rps"] + (" (%d errors)" % p["errors"] if p["errors"] else "")
    out = [rps, "%.2f" % p["p50"], "%.2f" % p["p99"]]
    return out + ["%.1f%%" % (100 * p["spread"])] if spread else out

labels = {"client_credentials": "client_credentials (ES256 JWT)", "jwt_bearer": "JWT bearer (verify + sign)",
          "token_exchange": "token exchange (verify + sign)", "introspection": "introspection (opaque)",
          "jwks": "JWKS", "discovery": "discovery"}
# The work a request cannot avoid besides the HTTP exchange, in seconds.
crypto = {"client_credentials": 1 / sign_rate, "jwt_bearer": 1 / sign_rate + 1 / verify_rate,
          "token_exchange": 1 / sign_rate + 1 / verify_rate}
floor = {}
ratios = {}
print()
print("| endpoint | conns | inbound req/s | p50 ms | p99 ms | spread | oidc-provider req/s | p50 ms | p99 ms | nginx req/s | ratio |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for scenario in labels:
    for c in conns:
        ib, op, ng = point("inbound", scenario, c), point("oidc-provider", scenario, c), point("nginx", "jwks", c)
        parts = []
        if scenario in crypto:
            if ng and ib:
                floor[(scenario, c)] = 1 / (crypto[scenario] + 1 / ng["rps"])
                ratios[(scenario, c)] = ib["rps"] / floor[(scenario, c)]
                parts.append("%.0f%% of floor %.0f/s" % (100 * ratios[(scenario, c)], floor[(scenario, c)]))
        elif ng and ib:
            ratios[(scenario, c)] = ib["rps"] / ng["rps"]
            parts.append("%.0f%% of nginx" % (100 * ratios[(scenario, c)]))
        if ib and op:
            parts.append("%.1f× oidc-provider" % (ib["rps"] / op["rps"]))
        print("| %s | %d | %s | %s | %s | %s |" % (labels[scenario], c, " | ".join(cell(ib, True)),
              " | ".join(cell(op)), "%.0f" % ng["rps"] if ng else "–", "; ".join(parts) or "–"))
print()
print("nginx req/s: nginx serving inbound's JWKS bytes as a static file, at the same connection count;")
print("floor = 1/(1/sign_rate + 1/nginx req/s), with 1/verify_rate added for the grants that verify a JWT;")
print("raw ES256 rates on CPU 0: signing %.0f/s, verification %.0f/s." % (sign_rate, verify_rate))
peer_spreads = [point(s, sc, c)["spread"] for (s, sc, c) in raw if s != "inbound"]
print("%s per run, %s run(s) per point: medians; spread = (max-min)/median of req/s (peers: at most %.1f%%)."
      % (duration, runs, 100 * max(peer_spreads or [0])))
print()
print("Targets (issue #17):")
def target(text, ok):
    print("- %s: %s" % (text, "–" if ok is None else ("met" if ok else "NOT met")))
for c in conns:
    r = ratios.get(("client_credentials", c))
    target("client_credentials ≥ 85%% of the floor at %d (%s)" % (c, "–" if r is None else "%.0f%%" % (100 * r)),
           None if r is None else r >= 0.85)
p = point("inbound", "client_credentials", 64)
target("client_credentials p99 ≤ 3 ms at 64 (%s)" % ("–" if p is None else "%.2f ms" % p["p99"]),
       None if p is None else p["p99"] <= 3.0)
for scenario in ("jwt_bearer", "token_exchange"):
    for c in conns:
        r = ratios.get((scenario, c))
        print("- %s at %d against its floor: %s (reported; no target)" % (labels[scenario], c, "–" if r is None else "%.0f%%" % (100 * r)))
for scenario, want in (("introspection", 0.50), ("jwks", 0.95), ("discovery", 0.95)):
    for c in conns:
        r = ratios.get((scenario, c))
        target("%s ≥ %.0f%% of nginx at %d (%s)" % (labels[scenario], 100 * want, c, "–" if r is None else "%.0f%%" % (100 * r)),
               None if r is None else r >= want)
PY
