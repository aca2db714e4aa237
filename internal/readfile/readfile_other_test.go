//go:build !unix

package readfile

import "testing"

func specialFiles(*testing.T, string) []readCase { return nil }
