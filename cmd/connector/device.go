package main

import (
	"context"
	"fmt"
	"time"

	"github.com/connector-engine/connector/connector/token"
)

// deviceWait replaces the sleep between device-grant polls in tests, which
// block it until they have approved the code instead of sleeping; nil in
// the CLI.
var deviceWait func(ctx context.Context, d time.Duration) error

// connectDevice runs the device authorization grant (RFC 8628): it shows
// where to enter which code on stdout (the first line names both, so a
// script or a person on a headless machine has what it needs), opens the
// complete URL in a browser unless noBrowser, and polls until the code is
// approved, denied or expired, storing the token. The device code itself is
// never printed.
func (a *app) connectDevice(ctx context.Context, s *session, noBrowser bool) (*token.Token, error) {
	flow := s.source.Flow()
	if deviceWait != nil {
		flow.Wait = deviceWait
	}
	da, err := flow.DeviceAuthorize(ctx)
	if err != nil {
		return nil, err
	}
	name := s.conn.Definition.Name
	fmt.Fprintf(a.stdout, "To authorize %s, open %s and enter the code %s\n", name, da.VerificationURI, da.UserCode)
	open := da.VerificationURI
	if da.VerificationURIComplete != "" {
		open = da.VerificationURIComplete
		fmt.Fprintf(a.stdout, "or open %s, which carries the code\n", da.VerificationURIComplete)
	}
	if !noBrowser {
		a.openAuthorization(name, open) // browser.go
	}
	fmt.Fprintf(a.stderr, "Waiting for the code to be approved (it expires in %s)...\n", time.Until(da.Expires).Round(time.Second))
	return s.source.PollDeviceAndStore(ctx, da)
}
