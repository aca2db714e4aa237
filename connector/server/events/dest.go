package events

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrDestination: the event URL is one the rules refuse.
var ErrDestination = errors.New("events: refused destination")

// CheckURL applies the destination rules to a tenant's event URL before it
// is stored: an absolute https URL without credentials or fragment, whose
// host is not (and does not resolve to) a loopback, private, link-local or
// unspecified address; unless allowPrivate, which also allows http, but on
// a loopback host only. The same address rules apply again to every
// connection the worker dials (Transport), so a name that resolves
// elsewhere later is refused then.
func CheckURL(ctx context.Context, raw string, allowPrivate bool) error {
	if len(raw) > 2048 {
		return fmt.Errorf("%w: the URL is %d bytes long; at most 2048", ErrDestination, len(raw))
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%w: %q must be an absolute URL such as https://platform.example.com/connector-events", ErrDestination, raw)
	}
	if u.User != nil {
		return fmt.Errorf("%w: the URL must not carry a user name or password; events are authenticated by their signature", ErrDestination)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("%w: the URL must not have a fragment (#...)", ErrDestination)
	}
	host := strings.ToLower(u.Hostname())
	switch u.Scheme {
	case "https":
	case "http":
		if !allowPrivate || !isLoopbackHost(host) {
			return fmt.Errorf("%w: the URL must be https (http is allowed only for a loopback host when the server allows private hosts)", ErrDestination)
		}
	default:
		return fmt.Errorf("%w: the URL's scheme is %q; it must be https", ErrDestination, u.Scheme)
	}
	if allowPrivate {
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Errorf("%w: %s is a loopback host, which the server refuses unless started with --allow-private", ErrDestination, host)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return checkAddr(host, ip)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("%w: %s does not resolve: %v", ErrDestination, host, err)
	}
	for _, a := range addrs {
		if err := checkAddr(host, a); err != nil {
			return err
		}
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// checkAddr refuses the addresses no event may be sent to from a server
// inside someone's network.
func checkAddr(host string, ip netip.Addr) error {
	ip = ip.Unmap()
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || cgnat.Contains(ip) {
		return fmt.Errorf("%w: %s is (or resolves to) %s, a loopback, private or link-local address, which the server refuses unless started with --allow-private", ErrDestination, host, ip)
	}
	return nil
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598), not
// routable on the internet either.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Transport returns the worker's HTTP transport: no proxy (a proxy would
// hide the destination from the rules), and a dialer that applies the
// address rules to the address actually dialled, after DNS, so that a
// name rebound to a private address between CheckURL and the delivery is
// refused at connect time.
func Transport(allowPrivate bool) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrDestination, err)
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("%w: dialling %s", ErrDestination, address)
			}
			return checkAddr(host, ip)
		}
	}
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  30 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
}
