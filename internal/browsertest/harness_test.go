package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/builtin"
	"github.com/stepup-bridge/stepup-bridge/internal/app"
	"github.com/stepup-bridge/stepup-bridge/internal/keycloaktest"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/pages"
	"github.com/stepup-bridge/stepup-bridge/internal/server"
	"github.com/stepup-bridge/stepup-bridge/internal/stepup"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/backend"
	"github.com/stepup-bridge/stepup-bridge/internal/testenv"
)

// sidecar is a whole sidecar on loopback plus the application origin.
type sidecar struct {
	URL     string // the sidecar, http://127.0.0.1:port
	AppURL  string // the application, another origin
	KCURL   string
	Store   store.Store
	Factors *factors.Registry
}

// appPage is the application's page that hands the user to the sidecar:
// a form posting its access token to an entry page (no script: the user
// presses the button).
var appPage = template.Must(template.New("app").Parse(`<!doctype html><html lang="en"><head><title>App</title></head><body>
<h1>Demo application</h1>
<form method="post" action="{{.Action}}">
<input type="hidden" name="access_token" value="{{.Token}}">
<input type="hidden" name="return_to" value="{{.ReturnTo}}">
<button type="submit" id="go">Continue on the sidecar</button>
</form></body></html>`))

// startSidecar assembles the sidecar as the binary does, with the pages'
// return_to allow-list naming the application's /done.
func startSidecar(t *testing.T, mutate ...func(*config.Config)) *sidecar {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	kc, err := keycloaktest.Start(ctx, keycloaktest.Options{})
	if err != nil {
		t.Fatalf("starting keycloaktest: %v", err)
	}
	t.Cleanup(func() { _ = kc.Close() })
	if err := kc.ImportRealm(keycloaktest.DevRealm()); err != nil {
		t.Fatal(err)
	}
	cfg := testenv.Config(t, kc.URL())
	cfg.Factors.Enabled = []string{"backup_code", "pin", "totp"}
	for _, m := range mutate {
		m(&cfg)
	}
	if err := app.Apply(ctx, cfg, io.Discard); err != nil {
		t.Fatalf("provisioning: %v", err)
	}

	// The application: its own origin (another port), pages built per test.
	sc := &sidecar{KCURL: kc.URL()}
	appMux := http.NewServeMux()
	appMux.HandleFunc("GET /start", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = appPage.Execute(w, map[string]string{
			"Action": sc.URL + r.URL.Query().Get("entry"), "Token": r.URL.Query().Get("token"), "ReturnTo": sc.AppURL + "/done",
		})
	})
	appMux.HandleFunc("GET /done", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><title>App: done</title></head><body><h1 id="done">Back in the application</h1></body></html>`)
	})
	appSrv := httptest.NewServer(appMux)
	t.Cleanup(appSrv.Close)
	sc.AppURL = appSrv.URL

	log := slog.New(slog.DiscardHandler)
	st, err := backend.Open(ctx, cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	kr, err := keyring.FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	br, err := bridge.FromConfig(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	reg, err := builtin.NewRegistry(cfg, builtin.Deps{Store: st, Registerer: prometheus.NewRegistry(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := stepup.New(stepup.Config{Keycloak: br, Verifier: br.Verifier(), Factors: reg, Store: st, Keyring: kr, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Config: cfg, Store: st, Logger: log, Verifier: br.Verifier(), StepUp: svc,
		Factors: reg, Pages: &pages.Config{ReturnTo: []string{sc.AppURL + "/done"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	sc.URL = "http://" + srv.Addr()
	sc.Store, sc.Factors = st, reg
	return sc
}

// passwordTokens logs user in at Keycloak directly (the application's
// own login): a Keycloak session the step-up is bound to.
func (sc *sidecar) passwordTokens(t *testing.T, user, pass string) (access, sub string) {
	t.Helper()
	access, _, sub = sc.passwordTokensWithRefresh(t, user, pass)
	return access, sub
}

// passwordTokensWithRefresh is passwordTokens with the refresh token.
func (sc *sidecar) passwordTokensWithRefresh(t *testing.T, user, pass string) (access, refresh, sub string) {
	t.Helper()
	resp, err := http.PostForm(sc.KCURL+"/realms/"+testenv.Realm+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {testenv.LoginClient}, "client_secret": {testenv.LoginSecret},
		"username": {user}, "password": {pass}, "scope": {"openid"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok bridge.Tokens
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("password grant for %s: %d %v", user, resp.StatusCode, err)
	}
	claims := testenv.Claims(t, tok.AccessToken)
	return tok.AccessToken, tok.RefreshToken, claims["sub"].(string)
}

// stepUpJSON steps up through the sidecar's JSON API with a backup code
// and returns the refreshed access token carrying the step-up.
func (sc *sidecar) stepUpJSON(t *testing.T, access, refresh, code string) string {
	t.Helper()
	post := func(path string, body map[string]string) map[string]any {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", sc.URL+path, strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+access)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode >= 300 {
			t.Fatalf("POST %s: %d %v", path, resp.StatusCode, m)
		}
		return m
	}
	c := post("/v1/stepup/challenges", map[string]string{"factor": "backup_code"})
	g := post("/v1/stepup/challenges/"+c["challenge_id"].(string)+"/verify", map[string]string{"code": code, "refresh_token": refresh})
	return g["tokens"].(map[string]any)["access_token"].(string)
}

// browser starts headless Chromium, or skips (fails under CI=true).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("STEPUP_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is required under CI (apt-get install -y chromium): %v", err)
		}
		t.Skipf("skipping the browser tests: no chromium at %s (apt-get install -y chromium, or set STEPUP_CHROMIUM)", path)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 1000),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancel)
	ctx, tcancel := context.WithTimeout(ctx, 40*time.Second)
	t.Cleanup(tcancel)
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// artifacts is where screenshots go.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("STEPUP_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// shot saves a full-page PNG screenshot named name.
func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	var buf []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&buf, 100)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// run runs actions, each within 15 seconds, or fails with the page's
// URL and text (and a screenshot) for context.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	for i, a := range actions {
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := chromedp.Run(sctx, a)
		cancel()
		if err != nil {
			var loc, text string
			_ = chromedp.Run(ctx, chromedp.Location(&loc), chromedp.Text("body", &text, chromedp.ByQuery))
			var buf []byte
			if chromedp.Run(ctx, chromedp.FullScreenshot(&buf, 100)) == nil {
				_ = os.WriteFile(filepath.Join(os.TempDir(), "stepup-browsertest-failure.png"), buf, 0o644)
			}
			t.Fatalf("%s (step %d): %v (at %s: %q)", what, i, err, loc, text)
		}
	}
}

// location returns the browser's URL.
func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	var loc string
	run(t, ctx, "reading the location", chromedp.Location(&loc))
	return loc
}

// networkCookies lists the browser's cookies as name=value.
func networkCookies(ctx context.Context) ([]string, error) {
	cs, err := network.GetCookies().Do(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Name+"="+c.Value)
	}
	return out, nil
}
