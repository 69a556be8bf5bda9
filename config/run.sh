#!/usr/bin/env bash
# run.sh BRIDGE CONFIG -- what `make run` does after building.
#
# Starts the bridge on CONFIG. When nothing listens on the configured
# broker or Redis address and that address is on this machine, starts a
# private mosquitto / redis-server there first, with their data under
# ./state/, and says so. The private mosquitto also serves the chat page
# (build/www, from make web) on config/mosquitto.conf's websockets
# listener. Prints the page's address and the commands to try a chat.
# Ctrl-C stops the bridge and whatever this script started, by PID.
set -u
bridge=$1
config=$2
state=$PWD/state
confdir=$(dirname "$0")
pids=()

cleanup() {
    trap - INT TERM EXIT
    [ -n "${bridge_pid:-}" ] && kill -TERM "$bridge_pid" 2>/dev/null && wait "$bridge_pid" 2>/dev/null
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
}
trap cleanup INT TERM EXIT

# The effective settings, from the bridge's own reading of the file.
dump=$("$bridge" -c "$config" --dump-config) || exit 2
get() { printf '%s\n' "$dump" | sed -n "s/^$1 = //p"; }
uri=$(get mqtt.uri)
mqtt_hostport=${uri#*://}
mqtt_host=${mqtt_hostport%:*}
mqtt_port=${mqtt_hostport##*:}
[ "$mqtt_port" = "$mqtt_hostport" ] && mqtt_port=1883
redis_host=$(get redis.host)
redis_port=$(get redis.port)
prefix=$(get mqtt.topic_prefix)
key_prefix=$(get redis.key_prefix)

# The chat page: config/mosquitto.conf's websockets listener ("listener
# PORT HOST" followed by "protocol websockets") serving the built page.
ws=$(awk '/^listener /{ l = $2 " " $3 } /^protocol[ \t]+websockets/{ print l; exit }' \
    "$confdir/mosquitto.conf")
ws_port=${ws%% *}
ws_host=${ws#* }
[ -n "$ws_host" ] || ws_host=127.0.0.1
www=$(cd "$(dirname "$bridge")" && pwd)/www
page=

listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
# Whether HOST:PORT answers GET / with the chat page.
serves_page() {
    (exec 3<>"/dev/tcp/$1/$2" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 &&
        timeout 2 grep -q '<title>chat-bridge</title>' <&3) 2>/dev/null
}
is_local() { case $1 in 127.*|localhost|::1) return 0;; esac; return 1; }
wait_port() {
    for _ in $(seq 1 100); do listening "$1" "$2" && return 0; sleep 0.1; done
    echo "run: nothing came up on $1:$2" >&2; return 1
}

# config/mosquitto.conf with this run's listeners (the file's listener
# lines and their protocol and http_dir are replaced) and data directory.
start_mosquitto() {
    local web=
    mkdir -p "$state/mosquitto"
    if [ -z "$ws_port" ]; then
        :
    elif listening "$ws_host" "$ws_port"; then
        echo "run: $ws_host:$ws_port is taken, so no chat page (its port is in config/mosquitto.conf)"
    else
        web="listener $ws_port $ws_host"$'\n'"protocol websockets"
        if [ -f "$www/index.html" ]; then
            web+=$'\n'"http_dir $www"
            page="http://$ws_host:$ws_port/"
        else
            echo "run: $www is not built (make web), so no chat page"
        fi
    fi
    {
        echo "# Written by config/run.sh from config/mosquitto.conf."
        grep -v -e '^persistence_location' -e '^listener' -e '^protocol' -e '^http_dir' \
            "$confdir/mosquitto.conf"
        echo "user $(id -un)"
        echo "persistence_location $state/mosquitto/"
        echo "listener $mqtt_port $mqtt_host"
        [ -z "$web" ] || echo "$web"
    } > "$state/mosquitto/mosquitto.conf"
    mosquitto -c "$state/mosquitto/mosquitto.conf" >"$state/mosquitto/mosquitto.log" 2>&1 &
    pids+=($!)
    echo "run: started a private mosquitto on $mqtt_host:$mqtt_port (log: state/mosquitto/mosquitto.log)"
    wait_port "$mqtt_host" "$mqtt_port"
}

start_redis() {
    mkdir -p "$state/redis"
    redis-server "$confdir/redis.conf" --bind "$redis_host" --port "$redis_port" \
        --dir "$state/redis" >"$state/redis/redis.log" 2>&1 &
    pids+=($!)
    echo "run: started a private redis-server on $redis_host:$redis_port (log: state/redis/redis.log)"
    wait_port "$redis_host" "$redis_port"
}

if ! listening "$mqtt_host" "$mqtt_port"; then
    if is_local "$mqtt_host"; then start_mosquitto || exit 1
    else echo "run: nothing answers on $mqtt_host:$mqtt_port yet; the bridge will keep trying"; fi
elif [ -n "$ws_port" ] && serves_page "$ws_host" "$ws_port"; then
    page="http://$ws_host:$ws_port/"
elif [ -n "$ws_port" ]; then
    echo "run: no chat page: the broker on $mqtt_host:$mqtt_port was running already, and the page"
    echo "     is served by the mosquitto started here (stop that broker, e.g. systemctl stop"
    echo "     mosquitto, and run again, or give it config/mosquitto.conf's websockets listener)"
fi
if ! listening "$redis_host" "$redis_port"; then
    if is_local "$redis_host"; then start_redis || exit 1
    else echo "run: nothing answers on $redis_host:$redis_port yet; the bridge will keep trying"; fi
fi

if [ -n "$page" ]; then
    cat <<PAGE

Chat in the browser, open it twice (as alice, as bob):
  ${page}?room=lobby&user=alice
  ${page}?room=lobby&user=bob
PAGE
fi
cat <<TRY

Try a chat from another terminal:
  mosquitto_sub -h $mqtt_host -p $mqtt_port -t '$prefix/+/msgs' -v
  mosquitto_pub -h $mqtt_host -p $mqtt_port -t $prefix/lobby/send -m '{"user":"alice","text":"hello"}'
  mosquitto_rr  -h $mqtt_host -p $mqtt_port -t $prefix/lobby/history -e reply/alice -m '{"limit":10}'
  mosquitto_rr  -h $mqtt_host -p $mqtt_port -t $prefix/lobby/delete -e reply/alice -m '{"user":"alice","id":1}'
  redis-cli -h $redis_host -p $redis_port hgetall $key_prefix:lobby:1
Ctrl-C stops everything.

TRY

"$bridge" -c "$config" &
bridge_pid=$!
wait "$bridge_pid"
rc=$?
bridge_pid=
exit $rc
