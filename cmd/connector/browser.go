package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// browserCommand is what opens a URL: $BROWSER (a command and its
// arguments, split at spaces, as gh and Python's webbrowser read it; "curl
// -sL" finishes an auto-approving flow without a browser), else the
// desktop's URL opener. fromEnv tells which, for the message.
func browserCommand() (argv []string, fromEnv bool) {
	if b := strings.Fields(os.Getenv("BROWSER")); len(b) > 0 {
		return b, true
	}
	if runtime.GOOS == "darwin" {
		return []string{"open"}, false
	}
	return []string{"xdg-open"}, false
}

// openBrowser starts the browser command with the URL and returns the
// command and whether it came from $BROWSER; err when it could not be
// started. It does not wait: the command runs while the redirect listener
// waits for the callback (it is called once the listener is up, so the
// opener cannot arrive too early).
func openBrowser(u string) (argv []string, fromEnv bool, err error) {
	argv, fromEnv = browserCommand()
	cmd := exec.Command(argv[0], append(argv[1:], u)...)
	if err := cmd.Start(); err != nil {
		return argv, fromEnv, err
	}
	go func() { _ = cmd.Wait() }()
	return argv, fromEnv, nil
}

// openAuthorization hands the authorization URL of what to the browser
// command and says on stderr what it actually did: ran $BROWSER, opened
// the desktop's browser, or found nothing to run, in which case the URL is
// there to open by hand. The URL is printed in every case.
func (a *app) openAuthorization(what, u string) {
	argv, fromEnv, err := openBrowser(u)
	cmd := strings.Join(argv, " ")
	switch {
	case err != nil && fromEnv:
		fmt.Fprintf(a.stderr, "$BROWSER (%s) could not be started: %v.\nOpen this URL in a browser to authorize %s:\n%s\n", cmd, unwrapExec(err), what, u)
	case err != nil:
		fmt.Fprintf(a.stderr, "No browser to open here (%s: %v; set $BROWSER, or use --no-browser to print only the URL).\nOpen this URL in a browser to authorize %s:\n%s\n", cmd, unwrapExec(err), what, u)
	case fromEnv:
		fmt.Fprintf(a.stderr, "Running $BROWSER (%s) with the URL to authorize %s. If that does not complete the authorization, open it in a browser:\n%s\n", cmd, what, u)
	default:
		fmt.Fprintf(a.stderr, "Opening your browser (%s) to authorize %s. If it does not open, visit:\n%s\n", cmd, what, u)
	}
}

// unwrapExec drops the command name that exec's errors repeat ("exec:
// \"xdg-open\": ...", "fork/exec /x: ...").
func unwrapExec(err error) error {
	var ee *exec.Error
	var pe *fs.PathError
	switch {
	case errors.As(err, &ee):
		return ee.Err
	case errors.As(err, &pe):
		return pe.Err
	}
	return err
}
