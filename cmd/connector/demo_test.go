package main

import (
	"errors"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	code, out, errOut := cli(t, "demo")
	if code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	steps := []string{
		"1. Started a Procore emulator at http://127.0.0.1:",
		"2. Opened an encrypted token store in ",
		"3. Built connection procore-demo: definition procore",
		"4. Authorization URL (state and PKCE S256 challenge): http://127.0.0.1:",
		"approved the consent page (decision=allow)",
		"5. Exchanged the code for tokens and stored them sealed",
		"6. Called me and list_companies: signed in as Jim Builder, 2 companies; using Builder Bros Construction (562949953421312)",
		"7. Paged through list_projects: 250 projects in 3 pages (Total header: 250)",
		"8. Called create_project: project ",
		"9. Registered webhook hook ",
		"the emulator delivered the event: Projects create ",
		"10. Waiting ",
		"11. Paged through list_projects again: 252 projects in 3 pages; the expired token was refreshed first, refresh token rotated sha256:",
		"12. Emulator saw 1 code exchange, 1 refresh, 12 API requests, 1 webhook delivery, 0 grants revoked for reuse",
		"Done: no secret was printed",
	}
	at := 0
	for _, s := range steps {
		i := strings.Index(out[at:], s)
		if i < 0 {
			t.Fatalf("demo output lacks %q (in order)\n%s", s, out)
		}
		at += i + len(s)
	}
	// The URL is shown without its state and challenge, and fingerprints differ.
	if regexp.MustCompile(`state=[^.&]`).MatchString(out) || regexp.MustCompile(`code_challenge=[^.&]`).MatchString(out) {
		t.Errorf("demo printed the state or PKCE challenge:\n%s", out)
	}
	dir := regexp.MustCompile(`store in (\S+) `).FindStringSubmatch(out)
	if dir == nil {
		t.Fatal("demo did not name its store directory")
	}
	if _, err := os.Stat(dir[1]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("demo left its store directory behind: %v", err)
	}
	fp := regexp.MustCompile(`rotated (sha256:[0-9a-f]{8}) -> (sha256:[0-9a-f]{8})`).FindStringSubmatch(out)
	if fp == nil || fp[1] == fp[2] {
		t.Errorf("refresh-token fingerprints missing or equal: %v", fp)
	}
}
