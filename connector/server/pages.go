package server

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The browser pages (the connect page, its result page, the admin pages,
// the callback's page) are rendered on the server with html/template from
// pages/*.html, styled by pages/style.css served from this server: no
// script, no third-party asset, so the CSP is default-src 'self'.

//go:embed pages/*.html pages/style.css
var pageFiles embed.FS

var (
	pageTemplates = parsePages()
	pageCSS       = mustRead("pages/style.css")
	// assetPath carries the stylesheet's hash, so that it is cached for
	// good and a new build's stylesheet is fetched at once.
	assetPath = "/assets/style." + shortHash(pageCSS) + ".css"
)

func mustRead(name string) []byte {
	b, err := fs.ReadFile(pageFiles, name)
	if err != nil {
		panic(err)
	}
	return b
}

func shortHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

var pageFuncs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
}

// parsePages makes one template per page file, each on the shared layout.
func parsePages() map[string]*template.Template {
	layout := template.Must(template.New("layout.html").Funcs(pageFuncs).ParseFS(pageFiles, "pages/layout.html"))
	names, err := fs.Glob(pageFiles, "pages/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "pages/"), ".html")
		if base == "layout" {
			continue
		}
		out[base] = template.Must(template.Must(layout.Clone()).ParseFS(pageFiles, n))
	}
	return out
}

// pageBase is what the layout needs of every page.
type pageBase struct {
	Title string
	Wide  bool
	Asset string
	Admin *adminBar // the signed-in admin's header; nil elsewhere
}

type adminBar struct {
	Tenant      string
	CSRF        string
	DeadLetters bool
}

// pageCSP is the policy of every page. formAction adds the origins a form
// may lead to (the provider's authorization endpoint, which a submitted
// connect form is redirected to: browsers check form-action on redirects).
func pageCSP(formAction ...string) string {
	fa := "'self'"
	for _, o := range formAction {
		fa += " " + o
	}
	return "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action " + fa
}

func pageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP())
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// pageRoute registers a browser page: every answer, errors included,
// carries the page headers. Pages are not API routes (they are listed by
// PagePatterns, not Patterns, and are not in the OpenAPI document).
func (s *Server) pageRoute(pattern string, h http.HandlerFunc) {
	s.pagePatterns = append(s.pagePatterns, pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w.Header())
		h(w, r)
	})
}

// PagePatterns returns the browser pages the server registers ("METHOD
// /path"), which answer HTML rather than JSON.
func (s *Server) PagePatterns() []string { return slices.Clone(s.pagePatterns) }

func (s *Server) pageRoutes() {
	s.mux.HandleFunc("GET "+assetPath, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/css; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		_, _ = w.Write(pageCSS)
	})
	s.pagePatterns = append(s.pagePatterns, "GET "+assetPath)
	s.connectRoutes()
	s.adminRoutes()
}

// render writes page name with data (a struct embedding pageBase). The
// page is rendered to a buffer first, so that a template error is a 500
// page, not half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	var buf bytes.Buffer
	if err := pageTemplates[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.ErrorContext(r.Context(), "rendering a page", "page", name, "error", err)
		code, buf = http.StatusInternalServerError, bytes.Buffer{}
		buf.WriteString("<!doctype html><title>Error</title><p>This page could not be shown. Try again in a moment.")
	}
	if w.Header().Get("Content-Security-Policy") == "" { // a page route's own are kept
		pageHeaders(w.Header())
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// messagePage is a page that says one thing, and perhaps links onward.
type messagePage struct {
	pageBase
	Heading    string
	Paragraphs []string
	Good       bool
	Link       string
	LinkText   string
}

func (s *Server) message(w http.ResponseWriter, r *http.Request, code int, m messagePage) {
	if m.Title == "" {
		m.Title = m.Heading
	}
	m.Asset = assetPath
	s.render(w, r, code, "message", m)
}

// page writes a browser page saying msg under title (the callback's pages).
func (s *Server) page(w http.ResponseWriter, r *http.Request, code int, title, msg string) {
	s.message(w, r, code, messagePage{Heading: title, Paragraphs: []string{msg}, Good: code < 300})
}

// secureCookies reports whether cookies are marked Secure: always, unless
// the public URL is plain http on a loopback host (a developer's machine),
// where a browser would not send them back.
func (s *Server) secureCookies() bool {
	u, err := url.Parse(s.cfg.PublicURL)
	if err != nil || u.Scheme != "http" {
		return true
	}
	host := u.Hostname()
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}
