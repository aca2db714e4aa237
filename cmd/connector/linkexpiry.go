package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// linkExpiryNotes wraps show: after the URL is shown it says when the link
// expires, and if that passes before stop is called (the callback arrived,
// or the wait ended), that it has and what to do. The wait goes on: a link
// opened in time may still be completing at the provider. stop returns
// once nothing more will be written to notes.
func linkExpiryNotes(show func(string), until time.Time, notes io.Writer) (wrapped func(string), stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	started := false
	wrapped = func(u string) {
		show(u)
		left := time.Until(until)
		fmt.Fprintf(notes, "The authorization link expires at %s (in %s): open it before then; the provider keeps a pushed authorization request only briefly.\n",
			until.Format(time.TimeOnly), left.Round(time.Second))
		started = true
		go func() {
			defer close(done)
			t := time.NewTimer(left)
			defer t.Stop()
			select {
			case <-t.C:
				fmt.Fprintf(notes, "The authorization link expired at %s. If it was not opened by then, the provider refuses it: press Ctrl-C and run 'connector connect' again. (Still waiting, in case it was opened in time.)\n",
					until.Format(time.TimeOnly))
			case <-quit:
			}
		}()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() { close(quit) })
		if started {
			<-done
		}
	}
	return wrapped, stop
}
