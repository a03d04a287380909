#!/bin/sh
# Runs promtool (its path first, then its arguments); exit status 77, meson's skip, when it is
# not installed, so that a machine without Prometheus skips these tests rather than passing them.
promtool=$1
shift
if [ ! -x "$promtool" ]; then
    echo "promtool not found (apt-get install prometheus): skipping" >&2
    exit 77
fi
exec "$promtool" "$@"
