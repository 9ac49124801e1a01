# bench/s3server.sh: sourced by the benchmarks. A throwaway S3 server
# (s3s-fs, SigV4 enforced) on loopback.
#
# bench_s3_server S3S WORK: starts the s3s-fs binary S3S on a free port,
# serving WORK/s3 (bucket "bench"), and sets bench_s3_pid for the caller to
# kill. Sets HOME to WORK/home and the AWS_* variables, so that neither
# mysnap's tools nor the aws CLI pick up the user's AWS configuration.
bench_s3_server() {
    local s3s=$1 work=$2 port tries=0
    mkdir -p "$work/s3/bench" "$work/home"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3
    export HOME=$work/home AWS_CONFIG_FILE=$work/home/config AWS_SHARED_CREDENTIALS_FILE=$work/home/credentials
    export AWS_ACCESS_KEY_ID=bench-access-key AWS_SECRET_ACCESS_KEY
    AWS_SECRET_ACCESS_KEY=$(head -c 18 /dev/urandom | base64)
    export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_EC2_METADATA_DISABLED=true AWS_REGION=us-east-1
    "$s3s" --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" \
        --secret-key "$AWS_SECRET_ACCESS_KEY" "$work/s3" 2>"$work/s3s.log" &
    bench_s3_pid=$!
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        kill -0 "$bench_s3_pid" 2>/dev/null ||
            { echo "bench: s3s-fs did not start: $(cat "$work/s3s.log")" >&2; return 1; }
        [ $((tries += 1)) -lt 200 ] ||
            { kill "$bench_s3_pid"; echo "bench: s3s-fs is not listening on port $port after 10 s" >&2; return 1; }
        sleep 0.05
    done
}
