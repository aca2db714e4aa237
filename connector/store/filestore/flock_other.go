//go:build !unix

package filestore

import (
	"errors"
	"os"
)

var errNoFlock = errors.New("filestore: the embedded store needs flock(2), which this operating system lacks; use the PostgreSQL store instead")

func tryLock(*os.File) (bool, error) { return false, errNoFlock }

func unlockFile(*os.File) error { return errNoFlock }
