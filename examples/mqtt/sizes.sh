#!/bin/sh
# sizes.sh: build the MQTT example's device for the targets below, as
# shipped (CGO_ENABLED=0, -ldflags='-s -w'), and print a table of binary
# sizes against the goal of 12 MiB. Exits 1 if a target does not build or
# is over the goal. Run from anywhere: ./examples/mqtt/sizes.sh
set -eu
cd "$(dirname "$0")/../.."
GOAL=$((12 * 1024 * 1024))
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
printf '%-16s %12s %9s  %s\n' target bytes MiB goal
for target in linux/amd64 linux/arm/7 linux/arm64 linux/mipsle linux/riscv64; do
	goos=${target%%/*}
	rest=${target#*/}
	goarch=${rest%%/*}
	goarm=
	[ "$rest" != "$goarch" ] && goarm=${rest#*/}
	bin="$out/device-$goarch"
	if ! CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOARM=$goarm \
		go build -trimpath -ldflags='-s -w' -o "$bin" ./examples/mqtt/device; then
		printf '%-16s %12s %9s  %s\n' "$target" - - "BUILD FAILED"
		status=1
		continue
	fi
	size=$(wc -c <"$bin" | tr -d ' ')
	verdict=ok
	if [ "$size" -gt "$GOAL" ]; then
		verdict=OVER
		status=1
	fi
	printf '%-16s %12d %9s  %s\n' "$target" "$size" "$(awk "BEGIN{printf \"%.2f\", $size/1048576}")" "$verdict"
done
exit $status
