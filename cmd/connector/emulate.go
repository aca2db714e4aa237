package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/connector-engine/connector/connector/emulator"
)

// parLifetime is how long the emulator's pushed authorization requests
// last: a minute, as at many providers (RFC 9126 2.2 suggests 5 to 600 s).
const parLifetime = time.Minute

// demoSecret returns a random client secret for an emulator client.
func demoSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails on supported platforms
	return "demo-" + base64.RawURLEncoding.EncodeToString(b)
}

func (a *app) emulateCommand() *cobra.Command {
	var (
		addr             string
		lifetime         time.Duration
		clientID, secret string
		publicID         string
		autoApprove      bool
	)
	c := &cobra.Command{
		Use:   "emulate procore",
		Short: "Run a local Procore emulator until interrupted",
		Long: `emulate serves a stand-in for Procore's login and API hosts on a loopback
address, with two registered applications that accept any loopback redirect
URI: a confidential one (client id and secret; the code flow and client
credentials) and a public one (client id alone; the device grant, and the
code flow with PKCE). Point a connection's base and login URLs at the
printed URL.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"procore"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "procore" {
				return usageErrorf("emulate: there is no emulator for %q; the only one is procore", args[0])
			}
			if lifetime <= 0 {
				return usageErrorf("emulate: --token-lifetime must be positive, like 5400s")
			}
			if secret == "" {
				secret = demoSecret()
			}
			if publicID == clientID {
				return usageErrorf("emulate: --public-client-id and --client-id are both %q; the two applications need different ids", clientID)
			}
			clients := []emulator.Client{{ID: clientID, Secret: secret, Name: "connector CLI", ServiceAccount: true}}
			if publicID != "" {
				// No secret: the emulator then refuses client_credentials
				// and any client_secret for it, and requires PKCE.
				clients = append(clients, emulator.Client{ID: publicID, Name: "connector CLI (public client)"})
			}
			srv := emulator.New(emulator.Config{
				Clients:       clients,
				TokenLifetime: lifetime,
				AutoApprove:   autoApprove,
				PARLifetime:   parLifetime,
			})
			ctx, cancel := interruptible(cmd.Context())
			defer cancel()
			base, err := srv.Start(ctx, addr)
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			defer srv.Close()
			// The secret is the emulator's own throwaway credential: the user
			// needs it to configure a connection, so it is shown.
			fmt.Fprintf(a.stdout, "Procore emulator at %s (login and API hosts)\n", base)
			fmt.Fprintf(a.stdout, "client id:     %s\nclient secret: %s\n", clientID, secret)
			if publicID != "" {
				fmt.Fprintf(a.stdout, "public client: %s (no secret: the device grant, or the code flow with PKCE)\n", publicID)
				fmt.Fprintf(a.stdout, "device grant:  codes from %s/oauth/device/code, entered at %s/oauth/device\n", base, base)
			}
			fmt.Fprintf(a.stdout, "pushed auth:   POST %s/oauth/par (RFC 9126, for a definition with par_uri; links last %s)\n", base, parLifetime)
			fmt.Fprintf(a.stdout, "redirect URIs: any http://127.0.0.1:PORT/... or http://localhost:PORT/...\n")
			if autoApprove {
				fmt.Fprintf(a.stdout, "consent:       approved automatically (no consent page; a device code when its verification URL is opened)\n")
			}
			fmt.Fprintf(a.stdout, "access tokens last %s. Press Ctrl-C to stop.\n", lifetime)
			<-ctx.Done()
			fmt.Fprintln(a.stderr, "emulator stopped")
			return nil
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:8089", "the loopback address to listen on")
	c.Flags().DurationVar(&lifetime, "token-lifetime", 5400*time.Second, "access token lifetime")
	c.Flags().StringVar(&clientID, "client-id", "connector-demo", "the client id of the registered application")
	c.Flags().StringVar(&secret, "client-secret", "", "its client secret (default: a random one, printed)")
	c.Flags().StringVar(&publicID, "public-client-id", "connector-demo-public", "the client id of the public application, which has no secret (\"\": none)")
	c.Flags().BoolVar(&autoApprove, "auto-approve", false, "approve every valid authorization request at once instead of showing the consent page, and a device code when its verification URL is opened")
	return c
}
