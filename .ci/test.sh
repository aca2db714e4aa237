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

echo "== go mod tidy (go.mod and go.sum must be what tidy makes them)"
if ! go mod tidy -diff; then
  echo "test.sh: go.mod or go.sum is not tidy; run 'go mod tidy' and commit the result" >&2; exit 1
fi

# go.mod's go line is the oldest Go the code and its dependencies need
# (golang.org/x/oauth2 and x/sync require 1.26.0): build and vet with exactly
# that release, fetched from the Go module proxy, so that nothing newer
# creeps in unnoticed. Offline, the check is skipped with a notice.
min_go=$(awk '$1 == "go" {print $2; exit}' go.mod)
echo "== go$min_go (go.mod's minimum): build and vet"
if GOTOOLCHAIN="go$min_go" go version >/dev/null 2>&1; then
  GOTOOLCHAIN="go$min_go" go vet ./...
else
  echo "test.sh: notice: could not fetch go$min_go from the Go module proxy; the minimum-version build was skipped" >&2
fi

echo "== chromium (cmd/connector's browser consent tests)"
if [ -z "${CHROME_BIN:-}" ] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && ! command -v google-chrome >/dev/null; then
  if command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test.sh: no Chromium found and no apt-get to install it; install Chromium or set CHROME_BIN (the browser tests fail without it under CI=true)" >&2
  fi
fi

echo "== postgresql (the PostgreSQL store's tests: connector/internal/pgtest starts throwaway servers)"
if [ -n "${PGTEST_BIN:-}" ]; then
  echo "using PGTEST_BIN=$PGTEST_BIN"
elif ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "found $(ls /usr/lib/postgresql/*/bin/postgres | tr '\n' ' ')"
elif command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing postgresql with apt-get"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  echo "installed $(ls /usr/lib/postgresql/*/bin/postgres | tr '\n' ' ')"
else
  echo "test.sh: no PostgreSQL server under /usr/lib/postgresql and no apt-get to install it; install PostgreSQL or set PGTEST_BIN (the store tests fail without it under CI=true)" >&2
fi

# The whole connector package takes 5-10 minutes under the race detector on
# two cores, longer on a busy machine: past go test's default 10-minute limit.
echo "== go test -race"
go test -race -count=1 -timeout 45m ./... 2>&1 | tee /tmp/connector-test.log
