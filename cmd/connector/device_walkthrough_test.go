package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeSection returns the part of cmd/connector/README.md from heading
// to the next heading of the same or a higher level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("cmd/connector/README.md has no %q section; this test runs it", heading)
	}
	s = s[i+len(heading)+2:]
	level := heading[:strings.IndexByte(heading, ' ')+1] // "### "
	for j := 0; j < len(s); {
		k := strings.Index(s[j:], "\n#")
		if k < 0 {
			break
		}
		j += k + 1
		if line := s[j:]; strings.HasPrefix(line, "# ") || strings.HasPrefix(line, "## ") || strings.HasPrefix(line, level) {
			return s[:j]
		}
	}
	return s
}

// startEmulate runs `connector emulate ...` in process, as the README
// writes it but on a free port, and returns the URL it serves and what it
// printed; the emulator stops at the end of the test.
func startEmulate(t *testing.T, args []string) (base, banner string) {
	t.Helper()
	pr, pw := io.Pipe()
	a := &app{stdout: pw, stderr: io.Discard}
	root := a.rootCommand()
	root.SetArgs(append(args, "--addr", "127.0.0.1:0"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		go io.Copy(io.Discard, pr) // "emulator stopped" and anything else
		if err := <-done; err != nil {
			t.Errorf("emulate: %v", err)
		}
	})
	var b strings.Builder
	lines := bufio.NewScanner(pr)
	for lines.Scan() {
		l := lines.Text()
		b.WriteString(l + "\n")
		if rest, ok := strings.CutPrefix(l, "Procore emulator at "); ok {
			base, _, _ = strings.Cut(rest, " ")
		}
		if strings.HasPrefix(l, "access tokens last ") {
			return base, b.String()
		}
	}
	t.Fatalf("emulate ended before it was ready; it printed:\n%s", b.String())
	return "", ""
}

// TestREADMEDeviceWalkthrough runs "The device grant on the emulator" of
// cmd/connector/README.md as written: the real emulate command (on a free
// port instead of 8089), its device.yaml and device-conn.yaml, connect
// --device with $BROWSER set to curl, which opens the verification URL
// that the auto-approving emulator takes as Allow, then a call. The first
// poll waits the emulator's 5 s interval for real: polling sooner is
// answered slow_down, as the RFC has it.
func TestREADMEDeviceWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("waits one device-grant interval (5 s)")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed; the walk-through's connect step needs it")
	}
	section := readmeSection(t, "### The device grant on the emulator")
	yamls := codeBlocks(section, "yaml")
	if len(yamls) != 2 {
		t.Fatalf("the section has %d yaml blocks; want 2 (device.yaml, device-conn.yaml)", len(yamls))
	}
	type command struct{ env, args []string }
	var commands []command
	for _, block := range codeBlocks(section, "sh") {
		for line := range strings.SplitSeq(strings.ReplaceAll(block, "\\\n", " "), "\n") {
			w := shellWords(strings.TrimSpace(line))
			var env []string
			for len(w) > 0 && regexp.MustCompile(`^[A-Z_]+=`).MatchString(w[0]) {
				env, w = append(env, w[0]), w[1:]
			}
			if len(w) > 1 && w[0] == "connector" {
				commands = append(commands, command{env, w[1:]})
			}
		}
	}
	if len(commands) != 3 || commands[0].args[0] != "emulate" || commands[1].args[0] != "connect" || commands[2].args[0] != "call" {
		t.Fatalf("the section's commands are %q; want emulate, connect, call", commands)
	}

	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("CONNECTOR_STORE", filepath.Join(dir, "state", "store.json"))
	t.Setenv("CONNECTOR_SECRET_KEY", "")
	os.Unsetenv("CONNECTOR_SECRET_KEY")
	t.Cleanup(func() { deviceWait = nil })
	deviceWait = nil // the real wait: the emulator refuses sooner polls

	base, banner := startEmulate(t, commands[0].args)
	conn := strings.ReplaceAll(yamls[1], "http://127.0.0.1:8089", base)
	if conn == yamls[1] {
		t.Fatal("device-conn.yaml does not point at the emulator (http://127.0.0.1:8089)")
	}
	id := regexp.MustCompile(`(?m)^client_id: (\S+)$`).FindStringSubmatch(conn)
	if id == nil || !strings.Contains(banner, "\npublic client: "+id[1]+" (no secret") || strings.Contains(conn, "client_secret") {
		t.Fatalf("device-conn.yaml should name the public client emulate prints, with no secret:\n%s\nemulate printed:\n%s", conn, banner)
	}
	if !strings.Contains(banner, "device grant:  codes from "+base+"/oauth/device/code, entered at "+base+"/oauth/device\n") {
		t.Errorf("emulate does not print the device grant's endpoints:\n%s", banner)
	}
	for name, content := range map[string]string{"device.yaml": yamls[0], "device-conn.yaml": conn} {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	for _, c := range commands[1:] {
		for _, kv := range c.env {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		name := strings.Join(c.args, " ")
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", name, code, &stdout, &stderr)
		}
		out := stdout.String()
		switch c.args[0] {
		case "connect":
			if os.Getenv("BROWSER") == "" || !strings.Contains(stderr.String(), "Running $BROWSER ("+os.Getenv("BROWSER")+")") {
				t.Errorf("%s: stderr %q; want it to run $BROWSER as the README sets it", name, stderr.String())
			}
			if !strings.Contains(out, "To authorize emulator-device, open "+base+"/oauth/device and enter the code ") ||
				!strings.Contains(out, "\nconnected emulator-device.production.") {
				t.Errorf("%s printed %q; want the code and connected ...", name, out)
			}
		case "call":
			if !strings.Contains(out, "Jim Builder") {
				t.Errorf("%s printed %q; want Jim Builder", name, out)
			}
		}
	}
}
