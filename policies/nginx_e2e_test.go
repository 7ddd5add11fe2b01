package policies

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nginxPath is Debian's nginx (nginx-light has auth_request built in).
const nginxPath = "/usr/sbin/nginx"

// nginxConf is the auth_request set-up docs/proxies.md documents, with
// temp paths so nginx runs unprivileged from a scratch prefix.
const nginxConf = `
daemon off;
master_process off;
worker_processes 1;
pid {{DIR}}/nginx.pid;
error_log {{DIR}}/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path {{DIR}}/tmp/body;
    proxy_temp_path {{DIR}}/tmp/proxy;
    fastcgi_temp_path {{DIR}}/tmp/fastcgi;
    uwsgi_temp_path {{DIR}}/tmp/uwsgi;
    scgi_temp_path {{DIR}}/tmp/scgi;

    # nginx itself copies WWW-Authenticate from a 401 subrequest answer;
    # for a 403 (insufficient_scope) it has to be added, and only then,
    # or a 401 would carry the challenge twice.
    map $status $stepup_challenge_403 {
        403     $stepup_www_authenticate;
        default "";
    }

    server {
        listen 127.0.0.1:{{PORT}};

        location = /_stepup_authz {
            internal;
            proxy_pass http://127.0.0.1:{{AUTHZ_PORT}}/v1/authz;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-Host $host;
        }

        location / {
            auth_request /_stepup_authz;
            auth_request_set $stepup_www_authenticate $upstream_http_www_authenticate;
            auth_request_set $stepup_subject $upstream_http_x_auth_subject;
            auth_request_set $stepup_acr $upstream_http_x_auth_acr;
            auth_request_set $stepup_amr $upstream_http_x_auth_amr;
            auth_request_set $stepup_session $upstream_http_x_auth_session;
            add_header WWW-Authenticate $stepup_challenge_403 always;

            proxy_set_header X-Auth-Subject $stepup_subject;
            proxy_set_header X-Auth-Acr $stepup_acr;
            proxy_set_header X-Auth-Amr $stepup_amr;
            proxy_set_header X-Auth-Session $stepup_session;
            proxy_pass http://127.0.0.1:{{BACKEND_PORT}};
        }
    }
}
`

// tokenSource gives the e2e test a user's access token before and after
// a step-up to level 2 in the same session.
type tokenSource interface {
	Issuer() string
	Token(t *testing.T) string
	StepUp(t *testing.T, acr string, amr ...string)
}

type localTokens struct {
	ti      *testIssuer
	entries []StepUpEntry
}

func (l *localTokens) Issuer() string { return l.ti.issuer }

func (l *localTokens) Token(t *testing.T) string {
	c := l.ti.claims(time.Now(), "e2e-session")
	if len(l.entries) > 0 {
		c["stepup"] = stepUpClaim(l.entries...)
	}
	return l.ti.sign(t, c)
}

func (l *localTokens) StepUp(t *testing.T, acr string, amr ...string) {
	now := time.Now()
	l.entries = append(l.entries, StepUpEntry{SID: "e2e-session", ACR: acr, AMR: amr, IAT: now.Unix(), EXP: now.Add(time.Hour).Unix()})
}

func requireNginx(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(nginxPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("nginx is required in CI (apt-get install nginx-light): %v", err)
		}
		t.Skipf("skipping the nginx end-to-end test: %s not found (apt-get install nginx-light)", nginxPath)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func portOf(t *testing.T, rawURL string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(rawURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// startNginx runs nginx in the foreground from a scratch prefix and
// returns its base URL once it accepts connections.
func startNginx(t *testing.T, authzURL, backendURL string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	var addr string
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		conf := strings.NewReplacer("{{DIR}}", dir, "{{PORT}}", fmt.Sprint(port),
			"{{AUTHZ_PORT}}", portOf(t, authzURL), "{{BACKEND_PORT}}", portOf(t, backendURL)).Replace(nginxConf)
		confPath := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, nginxPath, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatalf("starting nginx: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			cancel()
			<-exited
		})
		addr = fmt.Sprintf("127.0.0.1:%d", port)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case err := <-exited:
				log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
				t.Logf("nginx exited (%v): %s %s", err, out.String(), log)
				addr = ""
			default:
			}
			if addr == "" {
				break
			}
			if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
				c.Close()
				return "http://" + addr
			}
			time.Sleep(20 * time.Millisecond)
		}
		if addr != "" {
			t.Fatalf("nginx did not start listening on %s", addr)
		}
	}
	t.Fatal("nginx failed to start three times")
	return ""
}

func TestNginxAuthRequestEndToEnd(t *testing.T) {
	requireNginx(t)
	var tokens tokenSource = &localTokens{ti: newTestIssuer(t)}
	runNginxEndToEnd(t, tokens)
}

func runNginxEndToEnd(t *testing.T, tokens tokenSource) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	// The sidecar's forward-auth endpoint: the built-in policy behind a
	// rule that needs a scope the user's token lacks.
	spec := DefaultFile()
	spec.Rules = append([]RuleSpec{{Name: "admin", Match: MatchSpec{Paths: []string{"/api/admin/**"}, Scopes: []string{"stepup-admin"}}, Require: RequireSpec{ACR: "1"}}}, spec.Rules...)
	p, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthorizer(ctx, Config{Issuer: tokens.Issuer(), Policy: p, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	fa := a.ForwardAuth(ForwardAuthOptions{PathPrefix: "/v1/authz"})
	mux.Handle("/v1/authz", fa)
	mux.Handle("/v1/authz/", fa)
	authz := httptest.NewServer(mux)
	t.Cleanup(authz.Close)

	// The resource server behind nginx: it trusts only what nginx says.
	type hit struct{ method, subject, acr, amr, session string }
	hits := make(chan hit, 10)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- hit{r.Method, r.Header.Get("X-Auth-Subject"), r.Header.Get("X-Auth-Acr"), r.Header.Get("X-Auth-Amr"), r.Header.Get("X-Auth-Session")}
		_, _ = io.WriteString(w, "backend ok")
	}))
	t.Cleanup(backend.Close)

	base := startNginx(t, authz.URL, backend.URL)
	do := func(method, path, tok string, extra map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(`{"x":1}`))
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		for k, v := range extra {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	noHit := func() {
		t.Helper()
		select {
		case h := <-hits:
			t.Fatalf("a refused request reached the backend: %+v", h)
		default:
		}
	}

	// No token: 401 with a bare challenge, nothing about the policy.
	resp, _ := do("GET", "/api/profile", "", nil)
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm=`) ||
		strings.Contains(resp.Header.Get("WWW-Authenticate"), "acr_values") {
		t.Fatalf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	noHit()

	// A plain (level 1) token reads; a forged X-Auth-Subject is overwritten.
	tok := tokens.Token(t)
	resp, body := do("GET", "/api/profile", tok, map[string]string{"X-Auth-Subject": "mallory", "X-Auth-Acr": "3"})
	if resp.StatusCode != 200 || body != "backend ok" {
		t.Fatalf("GET with a level-1 token: %d %s", resp.StatusCode, body)
	}
	h := <-hits
	if h.subject == "" || h.subject == "mallory" || h.acr != "1" || h.session == "" {
		t.Errorf("backend saw %+v, want the token's subject at acr 1", h)
	}
	subject := h.subject

	// The same token cannot write: RFC 9470 challenge through nginx.
	resp, _ = do("POST", "/api/profile", tok, nil)
	const want = `error="insufficient_user_authentication", error_description="authentication level 2 within the last 5m is required", acr_values="2", max_age=300`
	if n := len(resp.Header.Values("WWW-Authenticate")); n != 1 {
		t.Errorf("%d WWW-Authenticate headers, want 1: %q", n, resp.Header.Values("WWW-Authenticate"))
	}
	if www := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.HasPrefix(www, "Bearer realm=") || !strings.HasSuffix(www, want) {
		t.Fatalf("POST with a level-1 token: %d %q, want 401 with %s", resp.StatusCode, www, want)
	}
	noHit()

	// A missing scope: 403 with its challenge, copied by the map above.
	resp, _ = do("GET", "/api/admin/users", tok, nil)
	if www := resp.Header.Values("WWW-Authenticate"); resp.StatusCode != 403 || len(www) != 1 || !strings.Contains(www[0], `error="insufficient_scope"`) || !strings.Contains(www[0], `scope="stepup-admin"`) {
		t.Errorf("GET without the admin scope: %d %q, want 403 with one insufficient_scope challenge", resp.StatusCode, www)
	}
	noHit()

	// Path tricks do not dodge the rule.
	resp, _ = do("POST", "/static/../api/profile", tok, nil)
	if resp.StatusCode != 401 {
		t.Errorf("dot-segment POST: %d, want 401", resp.StatusCode)
	}
	noHit()

	// The user steps up (a PIN) and refreshes: the POST passes.
	tokens.StepUp(t, "2", "pin")
	tok = tokens.Token(t)
	resp, body = do("POST", "/api/profile", tok, nil)
	if resp.StatusCode != 200 || body != "backend ok" {
		t.Fatalf("POST after step-up: %d %s (WWW-Authenticate %q)", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
	}
	h = <-hits
	if h.method != "POST" || h.subject != subject || h.acr != "2" || h.amr != "pin" {
		t.Errorf("backend saw %+v, want POST by %s at acr 2 with amr pin", h, subject)
	}

	// OPTIONS is denied by the built-in default: 403 through nginx.
	resp, _ = do("OPTIONS", "/api/profile", tok, nil)
	if resp.StatusCode != 403 {
		t.Errorf("OPTIONS: %d, want 403", resp.StatusCode)
	}
	noHit()
}
