package pages

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/devices"
	"github.com/stepup-bridge/stepup-bridge/internal/notify"
	"github.com/stepup-bridge/stepup-bridge/internal/stepup"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS []byte

// ContentSecurityPolicy is sent with every page: nothing but the embedded
// stylesheet and data: images (the QR code) load, no script runs, forms
// post only to the sidecar, and no other site may frame the pages.
const ContentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Flows are the login and step-up flows the pages drive
// (*stepup.Service).
type Flows interface {
	Login(ctx context.Context, req stepup.LoginRequest) (stepup.LoginResult, error)
	LoginMFA(ctx context.Context, req stepup.MFARequest) (stepup.Grant, error)
	LoginChallenge(ctx context.Context, mfaToken, factor, ip string) (factors.Delivery, error)
	CreateChallenge(ctx context.Context, req stepup.ChallengeRequest) (stepup.Challenge, error)
	VerifyChallenge(ctx context.Context, req stepup.VerifyRequest) (stepup.Grant, error)
	// Logout ends the Keycloak session of tokens the pages drop.
	Logout(ctx context.Context, t bridge.Tokens)
}

// Factors is what the enrolment pages need of the factor registry
// (*factors.Registry).
type Factors interface {
	Names() []string
	Factor(name string) (factors.Factor, bool)
	Status(ctx context.Context, userID string) ([]factors.Status, error)
	Active(ctx context.Context, userID string) ([]string, error)
	Enrol(ctx context.Context, name, userID string, req factors.EnrolRequest, meta factors.Meta) (factors.Enrolment, error)
	Confirm(ctx context.Context, name, userID, code string, meta factors.Meta) (factors.Result, error)
	Challenge(ctx context.Context, name, userID string, req factors.ChallengeRequest, meta factors.Meta) (factors.Delivery, error)
}

// Devices is what the factors page needs of trusted devices.
type Devices interface {
	List(ctx context.Context, userID string) ([]devices.Device, error)
	Revoke(ctx context.Context, userID, id, by string, meta devices.Meta) error
}

// Activity is what the factors page needs of the security activity.
type Activity interface {
	Activity(ctx context.Context, userID string, limit int) ([]notify.Activity, error)
}

// Verifier verifies Keycloak access tokens (the bridge's verifier).
type Verifier interface {
	Verify(ctx context.Context, raw string) (*token.Claims, error)
}

// Config builds the pages. Flows, Factors and Verifier are required.
type Config struct {
	Flows    Flows
	Factors  Factors
	Verifier Verifier

	// PublicURL is the sidecar's external base URL (config public_url). Its
	// origin is the only one the pages' own forms may post from, and https
	// makes every cookie Secure. Empty derives the origin from the request
	// (Host, and TLS or not).
	PublicURL string
	// ReturnTo is the allow-list of URLs a browser may be sent back to after
	// a login or step-up (proposed config key pages.return_to). Each entry is
	// an exact origin and a path prefix, e.g. "https://app.example.com/after/".
	// Empty allows no return_to at all: the pages end on their own success
	// page.
	ReturnTo []string
	// CSRFKey keys the CSRF tokens; at least 32 bytes, the same on every
	// replica. Nil generates a random key, which only works with a single
	// replica (or sticky sessions).
	CSRFKey []byte
	// LoginEnabled serves the login pages (config login.enabled).
	LoginEnabled bool
	// LoginTTL is the life of the mfa cookie; keep it equal to the pending
	// login's (config login.mfa_token_ttl). Defaults to 5 minutes.
	LoginTTL time.Duration
	// ManagementMaxAge: once any factor is active, enrolling another needs a
	// step-up of the session at most this old (config
	// stepup.management_max_age). Defaults to 5 minutes.
	ManagementMaxAge time.Duration
	// RecentStepUp says whether the token shows a step-up recent enough to
	// manage factors (the JSON API's rule, so both agree). Nil checks for a
	// step-up entry of the token's session at most ManagementMaxAge old.
	RecentStepUp func(c *token.Claims) bool
	// Explain turns an error of the flows or factors into an HTTP status and
	// a message for the user (the server's one error mapping). Defaults to
	// 503 "try again later" for everything.
	Explain func(err error) (status int, message string)
	// ClientIP returns the client address the server derived. Defaults to
	// the TCP peer.
	ClientIP func(r *http.Request) string
	// DeviceCookie is the base name of the trusted-device cookie (config
	// devices.cookie_name); empty turns "trust this device" off on the
	// pages. The cookie is HttpOnly, SameSite=Strict, Path /pages/ and,
	// when the pages are served over https, Secure with the __Secure-
	// prefix; it holds the device token, which only ever replaces the
	// second factor after the password.
	DeviceCookie string
	// DeviceTTL is the cookie's life, the trust's (config devices.ttl).
	DeviceTTL time.Duration
	// Devices, if set, lists the user's trusted devices on the factors
	// page and lets them revoke one (*devices.Service).
	Devices Devices
	// Activity, if set, shows the user's recent security events on the
	// factors page (*notify.Notifier).
	Activity Activity
	// Now is the clock; Rand the source of cookie values. Defaults to
	// time.Now and crypto/rand.
	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
}

// Handler serves every page under /pages/. Build it with New; it is safe
// for concurrent use and holds no state of its own beyond its config: the
// browser's state is in its cookies and forms, the flows' in the store.
type Handler struct {
	cfg       Config
	returnTo  ReturnToList
	publicOri string
	csrf      *csrf
	cookies   cookieJar
	tmpl      map[string]*template.Template
	mux       *http.ServeMux
	log       *slog.Logger
}

// New checks cfg and builds the handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Flows == nil || cfg.Factors == nil || cfg.Verifier == nil {
		return nil, errors.New("pages: Flows, Factors and Verifier are required")
	}
	rt, err := ParseReturnToList(cfg.ReturnTo)
	if err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.LoginTTL <= 0 {
		cfg.LoginTTL = 5 * time.Minute
	}
	if cfg.ManagementMaxAge <= 0 {
		cfg.ManagementMaxAge = 5 * time.Minute
	}
	if cfg.Explain == nil {
		cfg.Explain = func(error) (int, string) {
			return http.StatusServiceUnavailable, "The service is unavailable; try again later."
		}
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = func(r *http.Request) string {
			h, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return r.RemoteAddr
			}
			return h
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	key := cfg.CSRFKey
	if key == nil {
		key = make([]byte, 32)
		if _, err := io.ReadFull(cfg.Rand, key); err != nil {
			return nil, fmt.Errorf("pages: generating a CSRF key: %w", err)
		}
	}
	if len(key) < 32 {
		return nil, errors.New("pages: CSRFKey must have at least 32 bytes")
	}
	h := &Handler{cfg: cfg, returnTo: rt, log: cfg.Logger, mux: http.NewServeMux()}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, fmt.Errorf("pages: public URL %q is not an absolute http(s) URL", cfg.PublicURL)
		}
		h.publicOri = u.Scheme + "://" + u.Host
	}
	h.cookies = cookieJar{secure: h.secure}
	h.csrf = &csrf{key: key, cookies: h.cookies, rand: cfg.Rand}
	if h.tmpl, err = parseTemplates(); err != nil {
		return nil, err
	}
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	h.mux.HandleFunc("GET /pages/static/style.css", h.serveCSS)
	if h.cfg.LoginEnabled {
		h.mux.HandleFunc("GET /pages/login", h.loginForm)
		h.mux.HandleFunc("POST /pages/login", h.loginSubmit)
		h.mux.HandleFunc("GET /pages/login/mfa", h.mfaForm)
		h.mux.HandleFunc("POST /pages/login/mfa", h.mfaSubmit)
		h.mux.HandleFunc("POST /pages/login/deliver", h.mfaDeliver)
	}
	h.mux.HandleFunc("GET /pages/stepup", h.entryInfo)
	h.mux.HandleFunc("POST /pages/stepup", h.stepUpEntry)
	h.mux.HandleFunc("POST /pages/stepup/challenge", h.stepUpChallenge)
	h.mux.HandleFunc("POST /pages/stepup/verify", h.stepUpVerify)
	h.mux.HandleFunc("GET /pages/factors", h.entryInfo)
	h.mux.HandleFunc("POST /pages/factors", h.factorsEntry)
	h.mux.HandleFunc("POST /pages/factors/enrol", h.factorsEnrol)
	h.mux.HandleFunc("POST /pages/factors/confirm", h.factorsConfirm)
	h.mux.HandleFunc("POST /pages/factors/send", h.factorsSend)
	h.mux.HandleFunc("POST /pages/factors/backup-codes.txt", h.backupCodesDownload)
	if h.cfg.Devices != nil {
		h.mux.HandleFunc("POST /pages/factors/devices/revoke", h.deviceRevoke)
	}
	h.mux.HandleFunc("/pages/", func(w http.ResponseWriter, r *http.Request) {
		h.render(w, r, http.StatusNotFound, "message", &view{Title: "Page not found", Error: "There is no such page."})
	})
}

// ServeHTTP serves the pages with their security headers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: under no-referrer browsers send
	// "Origin: null" with form POSTs, and the CSRF check needs the origin.
	// Nothing secret is in the pages' URLs either way.
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	if h.secure(r) {
		hd.Set("Strict-Transport-Security", "max-age=31536000")
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) serveCSS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(styleCSS)
}

// origin is the sidecar's own origin as the browser sees it.
func (h *Handler) origin(r *http.Request) string {
	if h.publicOri != "" {
		return h.publicOri
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// secure says whether cookies get the Secure flag (and the __Host-
// prefix): always, except for plain http on a loopback host, which is
// dev mode on one machine.
func (h *Handler) secure(r *http.Request) bool {
	if strings.HasPrefix(h.publicOri, "https://") || r.TLS != nil {
		return true
	}
	host := r.Host
	if h.publicOri != "" {
		host = strings.TrimPrefix(h.publicOri, "http://")
	}
	if hn, _, err := net.SplitHostPort(host); err == nil {
		host = hn
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip == nil || !ip.IsLoopback()
}

// view is what every template gets; page-specific fields stay zero on the
// other pages.
type view struct {
	Title  string
	CSRF   string
	Error  string
	Notice string

	ReturnTo    string
	AccessToken string
	Username    string
	ACR         string

	Factors     []factorOption
	Factor      string
	ChallengeID string
	Delivery    *factors.Delivery
	Remaining   int
	// TrustDays, when set, offers "trust this device" for that many days.
	TrustDays int
	// Devices are the user's trusted devices (factors page), when shown.
	Devices []devices.Device
	// Activity is the user's recent security activity (factors page).
	Activity []notify.Activity

	Statuses   []factors.Status
	CanManage  bool
	Enrollable []string
	QR         template.URL
	Secret     string
	Codes      []string
}

// factorOption is one choice on a factor list.
type factorOption struct {
	Name     string
	Label    string
	Delivers bool
	Checked  bool
}

var factorLabels = map[string]string{
	factors.BackupCode: "Backup code",
	factors.PIN:        "PIN",
	factors.TOTP:       "Authenticator app (TOTP)",
	factors.HOTP:       "Hardware token (HOTP)",
	factors.FlashCall:  "Phone call (last digits of the calling number)",
	factors.SMS:        "Text message (SMS)",
	factors.Email:      "E-mail",
}

func factorLabel(name string) string {
	if l, ok := factorLabels[name]; ok {
		return l
	}
	return name
}

func (h *Handler) options(names []string, chosen string) []factorOption {
	out := make([]factorOption, 0, len(names))
	for i, n := range names {
		o := factorOption{Name: n, Label: factorLabel(n), Checked: n == chosen || (chosen == "" && i == 0)}
		if f, ok := h.cfg.Factors.Factor(n); ok {
			_, o.Delivers = f.(factors.Challenger)
		}
		out = append(out, o)
	}
	return out
}

func parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{"label": factorLabel}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("pages: parsing layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("pages: parsing %s: %w", n, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes page name with v; it fills in the CSRF token. Pages are
// never cached: they may carry an access token or secrets shown once.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	tok, err := h.csrf.token(w, r)
	if err != nil {
		h.log.ErrorContext(r.Context(), "pages: csrf token", "err", err)
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	v.CSRF = tok
	t, ok := h.tmpl[name]
	if !ok {
		h.log.ErrorContext(r.Context(), "pages: no template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		h.log.ErrorContext(r.Context(), "pages: rendering", "name", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// explain maps err for the user and logs failures of the machinery.
func (h *Handler) explain(r *http.Request, err error) (int, string) {
	if errors.Is(err, ErrCSRF) {
		return http.StatusForbidden, "The form expired or came from another site. Reload the page and try again."
	}
	if errors.Is(err, errBadForm) {
		return http.StatusBadRequest, "The form is incomplete or malformed. Start again."
	}
	if errors.Is(err, errNoToken) {
		return http.StatusUnauthorized, "Your application did not pass your session. Start again from the application."
	}
	if errors.Is(err, ErrReturnToRefused) {
		return http.StatusBadRequest, "The address to return to is not allowed."
	}
	status, msg := h.cfg.Explain(err)
	if status >= 500 {
		h.log.ErrorContext(r.Context(), "pages: request failed", "err", err, "status", status)
	} else {
		h.log.DebugContext(r.Context(), "pages: request refused", "err", err, "status", status)
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	msg = strings.ToUpper(msg[:1]) + msg[1:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return status, msg
}

// fail renders the plain message page for err.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := h.explain(r, err)
	h.render(w, r, status, "message", &view{Title: "Something went wrong", Error: msg})
}

// parsePost parses a form POST and checks origin and CSRF token. The entry
// forms (posted by the application) use parseEntry instead.
func (h *Handler) parsePost(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("pages: parsing form: %w", err)
	}
	if err := checkOrigin(r, h.origin(r)); err != nil {
		return err
	}
	return h.csrf.check(r)
}

// parseEntry parses an entry POST from the application: it must come from
// the sidecar's own origin or the origin of an allow-listed return_to.
func (h *Handler) parseEntry(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("pages: parsing form: %w", err)
	}
	return checkOrigin(r, append(h.returnTo.Origins(), h.origin(r))...)
}

// returnTo checks an optional return_to field: "" stays "".
func (h *Handler) checkReturnTo(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	return h.returnTo.Check(raw)
}

func (h *Handler) entryInfo(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "message", &view{Title: "Open this page from your application",
		Notice: "This page is opened by your application, which passes your session to it. Go back to the application and start again there."})
}

// cookie names; with the Secure flag they get the __Host- prefix, which
// pins them to this host and path / so no sibling subdomain can set them.
const (
	cookieCSRF = "stepup-csrf"
	cookieMFA  = "stepup-mfa"
)

// cookieJar reads and writes the pages' cookies with their flags.
type cookieJar struct {
	secure func(*http.Request) bool
}

func (c cookieJar) name(r *http.Request, base string) string {
	if c.secure(r) {
		return "__Host-" + base
	}
	return base
}

func (c cookieJar) get(r *http.Request, base string) string {
	ck, err := r.Cookie(c.name(r, base))
	if err != nil {
		return ""
	}
	return ck.Value
}

// set writes a cookie; maxAge 0 makes a session cookie, < 0 deletes it.
func (c cookieJar) set(w http.ResponseWriter, r *http.Request, base, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: c.name(r, base), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode,
	})
}

// verifyUser verifies the access token of an entry form and requires a
// user session.
func (h *Handler) verifyUser(ctx context.Context, raw string) (*token.Claims, error) {
	if raw == "" || len(raw) > 16<<10 {
		return nil, errNoToken
	}
	c, err := h.cfg.Verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if c.Subject == "" || c.SessionID == "" {
		return nil, stepup.ErrNoSession
	}
	return c, nil
}

// errNoToken: an entry form without the application's access token.
var errNoToken = errors.New("pages: the application did not pass an access token")

func timeUnix(s int64) time.Time { return time.Unix(s, 0) }

// HasPIN tells the factors page to show the PIN form.
func (v *view) HasPIN() bool { return slices.Contains(v.Enrollable, factors.PIN) }

// errBadForm: a form that is malformed beyond what the user could have typed.
var errBadForm = errors.New("pages: malformed form")
