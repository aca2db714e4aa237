package filestore

import (
	"context"
	"math/rand/v2"
	"os"
	"time"
)

// Lock waits are polled: a blocking flock cannot be abandoned when a context
// ends. The first retry comes quickly because the store lock is held only for
// one write; the cap keeps a waiter for a long refresh from spinning.
const (
	firstLockWait = time.Millisecond
	maxLockWait   = 50 * time.Millisecond
)

// openLockFile opens (creating if needed) a file used only for its flock.
// Lock files are never removed: unlinking one while another process waits on
// it would let two holders lock two different files of the same name.
func openLockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

// waitLock takes an exclusive flock on f, retrying with a growing, jittered
// pause until ctx ends; then it returns context.Cause(ctx).
func waitLock(ctx context.Context, f *os.File) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	wait := firstLockWait
	var timer *time.Timer
	for {
		busy, err := tryLock(f)
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
		wait = min(2*wait, maxLockWait)
	}
}
