//go:build !unix

package flock

import (
	"errors"
	"os"
)

var errNoFlock = errors.New("the embedded stores need flock(2), which this operating system lacks; use the PostgreSQL store instead")

// TryLock fails: this system has no flock(2).
func TryLock(*os.File) (bool, error) { return false, errNoFlock }

// Unlock fails: this system has no flock(2).
func Unlock(*os.File) error { return errNoFlock }
