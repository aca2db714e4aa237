#!/usr/bin/env bash
# Runs every test of the project, installing and starting what the tests
# need first. This is the test command README.md gives; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "test.sh: Go is not installed (https://go.dev/dl)" >&2; exit 1; }

echo "== go vet"
go vet ./...

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi

echo "== go test -race"
go test -race -count=1 ./... 2>&1 | tee /tmp/connector-test.log
