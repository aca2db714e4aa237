// Package flock owns the advisory file locks the embedded stores share
// (filestore, sqlitestore): an exclusive flock(2) on a file kept only for
// it, taken with a wait that ends with a context. flock locks belong to the
// open file description, so one excludes other opens of the same file in
// this process as well as in others, and the kernel drops it when the
// holder dies, however it dies.
package flock

import (
	"context"
	"math/rand/v2"
	"os"
	"time"
)

// Waits are polled: a blocking flock cannot be abandoned when a context
// ends. The first retry comes quickly because most locks are held for one
// write; the cap keeps a waiter for a long refresh from spinning.
const (
	firstWait = time.Millisecond
	maxWait   = 50 * time.Millisecond
)

// Open opens (creating if needed, mode 0600) a file used only for its lock.
// Lock files are never removed: unlinking one while another process waits
// on it would let two holders lock two different files of the same name.
func Open(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

// Wait takes an exclusive lock on f, retrying with a growing, jittered
// pause until ctx ends; then it returns context.Cause(ctx).
func Wait(ctx context.Context, f *os.File) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	wait := firstWait
	var timer *time.Timer
	for {
		busy, err := TryLock(f)
		if err != nil {
			return err
		}
		if !busy {
			return nil
		}
		// Jitter keeps waiters that started together from retrying together.
		d := wait/2 + rand.N(wait/2+1)
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-timer.C:
		}
		wait = min(2*wait, maxWait)
	}
}
