package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
)

// lockedBuffer is a bytes.Buffer written by a command in one goroutine and
// read by the test in another.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// walkthrough is the "Your first definition in five minutes" section of
// the top-level README.md.
func walkthrough(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "## Your first definition in five minutes")
	if i < 0 {
		t.Fatal(`README.md has no "## Your first definition in five minutes" section; this test runs it`)
	}
	s = s[i+1:]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	return s
}

// codeBlocks returns the fenced blocks of lang in s, unindented.
func codeBlocks(s, lang string) []string {
	re := regexp.MustCompile("(?ms)^( *)```" + lang + "\n(.*?)^ *```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		var b strings.Builder
		for line := range strings.SplitSeq(m[2], "\n") {
			b.WriteString(strings.TrimPrefix(line, m[1]))
			b.WriteByte('\n')
		}
		out = append(out, strings.TrimSuffix(b.String(), "\n"))
	}
	return out
}

// shellWords splits a command line as sh would for the simple lines of the
// README: words, '...' and "..." quoting; it stops at >, & and ;.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	quote := rune(0)
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '>' || r == '&' || r == ';':
			if inWord {
				words = append(words, cur.String())
			}
			return words
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// TestREADMEWalkthrough runs the README's first-definition walk-through as
// written: its first.yaml and conn.yaml, and each connector command of its
// shell blocks, against the emulator (on free ports instead of 8089 and
// 8765). A command or file changed so that it no longer works fails here.
func TestREADMEWalkthrough(t *testing.T) {
	section := walkthrough(t)
	yamls := codeBlocks(section, "yaml")
	if len(yamls) != 2 {
		t.Fatalf("the walk-through has %d yaml blocks; want 2 (first.yaml, conn.yaml)", len(yamls))
	}
	var commands [][]string
	envs := map[int][]string{} // NAME=value words before a command
	for _, block := range codeBlocks(section, "sh") {
		block = strings.ReplaceAll(block, "\\\n", " ")
		for line := range strings.SplitSeq(block, "\n") {
			w := shellWords(strings.TrimSpace(line))
			var env []string
			for len(w) > 0 && regexp.MustCompile(`^[A-Z_]+=`).MatchString(w[0]) {
				env, w = append(env, w[0]), w[1:]
			}
			if len(w) > 1 && w[0] == "connector" {
				envs[len(commands)] = env
				commands = append(commands, w[1:])
			}
		}
	}
	if len(commands) < 6 {
		t.Fatalf("found %d connector commands in the walk-through: %q", len(commands), commands)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("CONNECTOR_STORE", filepath.Join(dir, "state", "store.json"))
	t.Setenv("CONNECTOR_SECRET_KEY", "") // restored after the test; unset during it
	os.Unsetenv("CONNECTOR_SECRET_KEY")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	callbackAddr := l.Addr().String()
	l.Close()
	if err := os.WriteFile("first.yaml", []byte(yamls[0]), 0o600); err != nil {
		t.Fatal(err)
	}

	var connected bool
	for i, args := range commands {
		name := strings.Join(args, " ")
		for _, kv := range envs[i] {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		switch args[0] {
		case "emulate":
			// The same server the command runs, in process and on a free port.
			var secret string
			autoApprove := false
			for i, a := range args {
				if a == "--client-secret" && i+1 < len(args) {
					secret = args[i+1]
				}
				autoApprove = autoApprove || a == "--auto-approve"
			}
			if secret == "" || !autoApprove {
				t.Fatalf("%s: the walk-through needs --auto-approve and a --client-secret to write into conn.yaml", name)
			}
			srv := emulator.New(emulator.Config{
				Clients:     []emulator.Client{{ID: "connector-demo", Secret: secret, Name: "connector CLI", ServiceAccount: true}},
				AutoApprove: true,
			})
			base, err := srv.Start(ctx, "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			conn := strings.ReplaceAll(yamls[1], "http://127.0.0.1:8089", base)
			conn = strings.ReplaceAll(conn, "127.0.0.1:8765", callbackAddr)
			if conn == yamls[1] {
				t.Fatal("conn.yaml does not point at the emulator (http://127.0.0.1:8089)")
			}
			if err := os.WriteFile("conn.yaml", []byte(conn), 0o600); err != nil {
				t.Fatal(err)
			}
		case "connect":
			// connect opens the URL with $BROWSER, curl -sL as the README
			// says, which follows the emulator's redirect back to it; no
			// sleep, no second terminal.
			if !slices.ContainsFunc(envs[i], func(kv string) bool { return strings.HasPrefix(kv, "BROWSER=curl ") }) {
				t.Fatalf("%s: the walk-through should connect with BROWSER='curl -sL ...'", name)
			}
			if _, err := exec.LookPath("curl"); err != nil {
				t.Skip("curl is not installed; the walk-through's connect step needs it")
			}
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", name, code, &stdout, &stderr)
			}
			if !strings.HasPrefix(stdout.String(), "connected ") {
				t.Errorf("%s printed %q; want connected ...", name, stdout.String())
			}
			if want := "Running $BROWSER (" + os.Getenv("BROWSER") + ") with the URL to authorize my-procore."; !strings.HasPrefix(stderr.String(), want) {
				t.Errorf("%s said %q; want it to say what it runs: %s", name, stderr.String(), want)
			}
			connected = true
		default:
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", name, code, &stdout, &stderr)
			}
			out := stdout.String()
			switch {
			case args[0] == "render" && (!strings.HasPrefix(out, "GET https://login.procore.com/oauth/authorize?client_id=my-app&") ||
				!strings.Contains(out, "code_challenge_method=S256")):
				t.Errorf("%s printed %q; want the authorization URL with the standard parameters and PKCE", name, out)
			case args[0] == "call" && slices.Contains(args, "me") && !strings.Contains(out, "Jim Builder"):
				t.Errorf("%s printed %q; want Jim Builder", name, out)
			case args[0] == "call" && slices.Contains(args, "list_projects") && strings.Count(out, "\n") != emulator.DemoProjectCount+1:
				t.Errorf("%s printed %d lines; want a header and %d projects", name, strings.Count(out, "\n"), emulator.DemoProjectCount)
			}
		}
	}
	if !connected {
		t.Error("the walk-through never runs connector connect")
	}
}
