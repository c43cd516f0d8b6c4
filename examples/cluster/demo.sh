#!/bin/bash
# A three-member clusvc cluster on this machine, as root:
#
#   examples/cluster/demo.sh up               # build and start everything
#   examples/cluster/demo.sh curl             # ask the service who serves it
#   examples/cluster/demo.sh kill node1       # kill -9 a member's agent
#   examples/cluster/demo.sh partition node1  # cut a member's network
#   examples/cluster/demo.sh heal node1       # restore it (and its agent)
#   examples/cluster/demo.sh status           # members and services
#   examples/cluster/demo.sh down             # stop and remove everything
#
# It builds a bridge (10.88.0.1/24) with three member network namespaces
# (node1..node3: .11, .12, .13) and a client namespace (.200); starts a
# three-member etcd on 127.0.0.1, two `clusvc server`s on the bridge with
# TLS (a CA and a certificate made here with openssl) and an agent in each
# member's namespace with its own token; then applies `web`: the floating
# address 10.88.0.50 and a small HTTP application (the script `web`). Watch it move
# with `clusvc events -f` (the command is printed).
#
# Needs: etcd (Debian etcd-server), openssl, python3, curl, iproute2, and
# clusvc built with etcd support (cargo build --release --features etcd);
# set CLUSVC to its path if it is not target/release/clusvc.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${DEMO_DIR:-/tmp/clusvc-demo}
NET=${DEMO_NET:-10.88.0}
P=${DEMO_PREFIX:-demo}
# etcd's client ports are E+1..E+3, its peer ports E+11..E+13.
E=${DEMO_ETCD_BASE:-23790}
CLUSVC=${CLUSVC:-$HERE/../../target/release/clusvc}
MEMBERS="node1 node2 node3"
VIP=$NET.50

die() { echo "demo: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "needs $1"; }
addr_of() { case $1 in node1) echo $NET.11;; node2) echo $NET.12;; node3) echo $NET.13;; esac; }
wait_for() { # wait_for SECONDS CMD...: until CMD succeeds
    local limit=$1; shift
    for _ in $(seq $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
cli() { CLUSVC_SERVER=unix:$DIR/s1/clusvc.sock "$CLUSVC" "$@"; }

start_agent() {
    local m=$1
    nsenter --net=/run/netns/$P-$m "$CLUSVC" agent --member "$m" \
        --server "https://$NET.1:7451,https://$NET.1:7452" \
        --ca-file "$DIR/tls/ca.pem" --token-file "$DIR/tokens/$m.token" \
        --lease-ttl 2s --state-dir "$DIR/agent-$m" \
        >>"$DIR/agent-$m.log" 2>&1 &
    echo $! > "$DIR/agent-$m.pid"
}

up() {
    [ "$(id -u)" = 0 ] || die "run me as root (network namespaces)"
    for t in etcd openssl python3 curl ip nsenter; do need $t; done
    [ -x "$CLUSVC" ] || die "no clusvc at $CLUSVC: cargo build --release --features etcd, or set CLUSVC"
    [ -e "$DIR" ] && die "$DIR exists: run '$0 down' first"
    mkdir -p "$DIR"/{tls,tokens,app} && chmod 700 "$DIR/tokens"

    echo "== network: bridge $P-br ($NET.1), members, client"
    ip link add $P-br type bridge
    ip addr add $NET.1/24 dev $P-br
    ip link set $P-br up
    local i=0
    for ns in $MEMBERS client; do
        i=$((i + 1))
        local addr; addr=$(addr_of $ns); [ "$ns" = client ] && addr=$NET.200
        ip netns add $P-$ns
        ip -n $P-$ns link set lo up
        ip link add $P-v$i type veth peer name eth0 netns $P-$ns
        ip link set $P-v$i master $P-br up
        ip -n $P-$ns addr add $addr/24 dev eth0
        ip -n $P-$ns link set eth0 up
    done

    echo "== etcd: three members on 127.0.0.1:$((E + 1))-$((E + 3))"
    local cluster="e1=http://127.0.0.1:$((E + 11)),e2=http://127.0.0.1:$((E + 12)),e3=http://127.0.0.1:$((E + 13))"
    for n in 1 2 3; do
        etcd --name e$n --data-dir "$DIR/etcd$n" \
            --listen-client-urls http://127.0.0.1:$((E + n)) --advertise-client-urls http://127.0.0.1:$((E + n)) \
            --listen-peer-urls http://127.0.0.1:$((E + 10 + n)) --initial-advertise-peer-urls http://127.0.0.1:$((E + 10 + n)) \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --max-txn-ops 25000 --max-request-bytes 10485760 \
            >"$DIR/etcd$n.log" 2>&1 &
        echo $! > "$DIR/etcd$n.pid"
    done
    wait_for 30 curl -sf http://127.0.0.1:$((E + 1))/health || die "etcd did not come up (see $DIR/etcd1.log)"
    # Ours, not another etcd that already had these ports (set DEMO_ETCD_BASE).
    for n in 1 2 3; do
        kill -0 "$(cat "$DIR/etcd$n.pid")" 2>/dev/null \
            || die "etcd member e$n exited (port in use? see $DIR/etcd$n.log; set DEMO_ETCD_BASE)"
    done

    echo "== TLS: a CA and the servers' certificate for $NET.1"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=clusvc-demo-ca \
        -keyout "$DIR/tls/ca.key" -out "$DIR/tls/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=clusvc-server \
        -keyout "$DIR/tls/server.key" -out "$DIR/tls/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:%s\n' "$NET.1" > "$DIR/tls/san.ext"
    openssl x509 -req -in "$DIR/tls/server.csr" -CA "$DIR/tls/ca.pem" -CAkey "$DIR/tls/ca.key" \
        -CAcreateserial -days 2 -extfile "$DIR/tls/san.ext" -out "$DIR/tls/server.pem" 2>/dev/null
    chmod 600 "$DIR/tls/"*.key

    echo "== agent tokens (one per member)"
    for m in $MEMBERS; do
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/tokens/$m.token"
        chmod 600 "$DIR/tokens/$m.token"
    done

    echo "== two servers (s1, s2) on etcd; one is elected to run the controller"
    for s in 1 2; do
        mkdir -p "$DIR/s$s"
        "$CLUSVC" server --name s$s --store etcd:http://127.0.0.1:$((E + 1)),http://127.0.0.1:$((E + 2)),http://127.0.0.1:$((E + 3)) \
            --state-dir "$DIR/s$s" --socket "$DIR/s$s/clusvc.sock" \
            --listen $NET.1:745$s --tls-cert "$DIR/tls/server.pem" --tls-key "$DIR/tls/server.key" \
            --agent-tokens "$DIR/tokens" --lease-ttl 2s \
            >"$DIR/s$s.log" 2>&1 &
        echo $! > "$DIR/s$s.pid"
    done
    wait_for 30 test -S "$DIR/s1/clusvc.sock" || die "server s1 did not come up (see $DIR/s1.log)"

    echo "== members, and their agents"
    for m in $MEMBERS; do
        printf 'apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: %s\nspec: {}\n---\n' $m
    done > "$DIR/members.yaml"
    cli apply -f "$DIR/members.yaml"
    for m in $MEMBERS; do start_agent $m; done
    for m in $MEMBERS; do
        wait_for 30 sh -c "CLUSVC_SERVER=unix:$DIR/s1/clusvc.sock '$CLUSVC' get members | grep -q '^$m *alive'" \
            || die "the agent of $m did not come up (see $DIR/agent-$m.log)"
    done

    echo "== the web service: $VIP and an HTTP application"
    # Copies in a root-owned directory (clusvc runs only scripts that
    # nobody but root can change), with this demo's address.
    sed -e "s|^ADDR=.*|ADDR=$VIP|" -e "s|^STATE=.*|STATE=$DIR/app|" "$HERE/web" > "$DIR/web"
    chmod 755 "$DIR/web"
    sed -e "s|10.88.0.50|$VIP|" "$HERE/web.yaml" > "$DIR/web.yaml"
    cli apply -f "$DIR/web.yaml" --wait
    cli get services
    echo
    echo "The service answers from the client namespace:"
    do_curl
    cat <<EOT

Try it:
  export CLUSVC_SERVER=unix:$DIR/s1/clusvc.sock
  $CLUSVC events -f                      # in another terminal
  $0 kill node1                          # or: partition node1
  $0 curl
  $0 down
EOT
}

do_curl() { ip netns exec $P-client curl -s --max-time 2 "http://$VIP:8080/" || echo "(no answer)"; }

case ${1:-} in
up) up ;;
curl) do_curl ;;
status) cli get members; cli get services ;;
kill)
    m=${2:?member}; kill -9 "$(cat "$DIR/agent-$m.pid")"
    echo "killed the agent of $m (its watchdog stops its services before its lease expires)" ;;
partition)
    m=${2:?member}; ip -n $P-$m link set eth0 down
    echo "cut $m off the network (its agent will fence itself)" ;;
heal)
    m=${2:?member}; ip -n $P-$m link set eth0 up
    if ! kill -0 "$(cat "$DIR/agent-$m.pid")" 2>/dev/null; then start_agent $m; fi
    echo "$m is back" ;;
down)
    for f in "$DIR"/agent-*.pid "$DIR"/s?.pid "$DIR"/etcd?.pid; do
        [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
    done
    pkill -9 -f "clusvc watchdog --member node. --state-dir $DIR" 2>/dev/null || true
    pkill -f "http.server --bind $VIP" 2>/dev/null || true
    for ns in $MEMBERS client; do ip netns del $P-$ns 2>/dev/null || true; done
    ip link del $P-br 2>/dev/null || true
    rm -rf "$DIR"
    echo "removed the demo cluster" ;;
*) sed -n '2,9p' "$0"; exit 2 ;;
esac
