//go:build race

package server_test

// raceEnabled: the race detector makes a replica many times slower, so the
// load tests scale down under it (their invariants stay the same).
const raceEnabled = true
