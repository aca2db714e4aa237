package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// connect says what it does with the authorization URL: runs $BROWSER,
// opens the desktop's browser, or finds nothing to run and leaves the URL to
// open by hand (issue 13: BROWSER=curl used to be told "Opening your
// browser"). The command really gets the URL.
func TestOpenAuthorizationMessages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the desktop opener is xdg-open on Linux only")
	}
	const u = "http://127.0.0.1:1/oauth/authorize?client_id=connector-demo&state=STATE"
	bin := t.TempDir()
	got := filepath.Join(t.TempDir(), "url")
	mv, err := exec.LookPath("mv") // PATH is changed below
	if err != nil {
		t.Skip("no mv")
	}
	// A stand-in for xdg-open and for a $BROWSER: it records its arguments.
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" > " + got + ".tmp && " + mv + " " + got + ".tmp " + got + "\n"
	for _, name := range []string{"xdg-open", "record-url"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	empty := t.TempDir()

	var golden strings.Builder
	for _, c := range []struct {
		name, browser, path, wantArgs string
	}{
		{"$BROWSER, as the README's BROWSER='curl -sL -o /dev/null'", "record-url -sL -o /dev/null", bin, "-sL -o /dev/null " + u},
		{"$BROWSER that cannot be started", "/nonexistent/browser --new-tab", bin, ""},
		{"no $BROWSER: the desktop's opener", "", bin, u},
		{"no $BROWSER and no opener (a server)", "", empty, ""},
	} {
		t.Setenv("BROWSER", c.browser)
		t.Setenv("PATH", c.path)
		os.Remove(got)
		var stderr bytes.Buffer
		a := &app{stderr: &stderr}
		a.openAuthorization("my-procore", u)
		golden.WriteString("# " + c.name + "\n" + stderr.String())
		if !strings.HasSuffix(stderr.String(), "\n"+u+"\n") {
			t.Errorf("%s: the URL is not the last line:\n%s", c.name, stderr.String())
		}
		if c.wantArgs == "" {
			continue
		}
		var args []byte
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if b, err := os.ReadFile(got); err == nil {
				args = b
				break
			}
		}
		if string(args) != c.wantArgs+"\n" {
			t.Errorf("%s: the command got %q, want %q", c.name, args, c.wantArgs)
		}
	}
	checkGolden(t, filepath.Join("testdata", "browser-messages.golden"), golden.String())
}
