package stepup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/app"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/postgres/pgtest"
	"github.com/stepup-bridge/stepup-bridge/internal/testenv"
	"github.com/stepup-bridge/stepup-bridge/policies"
)

// enrolBackupCodes gives user a set of backup codes through the registry
// and returns them.
func enrolBackupCodes(t *testing.T, env *testenv.Env, userID string) []string {
	t.Helper()
	e, err := env.Runtime.Factors().Enrol(context.Background(), factors.BackupCode, userID, factors.EnrolRequest{}, factors.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Codes) == 0 {
		t.Fatal("no backup codes")
	}
	return e.Codes
}

func enrolPIN(t *testing.T, env *testenv.Env, userID, pin string) {
	t.Helper()
	if _, err := env.Runtime.Factors().Enrol(context.Background(), factors.PIN, userID,
		factors.EnrolRequest{Secret: pin, Confirmation: pin}, factors.Meta{}); err != nil {
		t.Fatal(err)
	}
}

func subject(t *testing.T, accessToken string) string {
	t.Helper()
	sub, _ := testenv.Claims(t, accessToken)["sub"].(string)
	if sub == "" {
		t.Fatal("token without sub")
	}
	return sub
}

// stepUpEntries returns the step-up entries a token carries.
func stepUpEntries(t *testing.T, accessToken string) []policies.StepUpEntry {
	t.Helper()
	raw, ok := testenv.Claims(t, accessToken)["stepup"]
	if !ok {
		return nil
	}
	b, _ := json.Marshal(raw)
	var out []policies.StepUpEntry
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("stepup claim %s: %v", b, err)
	}
	return out
}

func sid(t *testing.T, accessToken string) string {
	s, _ := testenv.Claims(t, accessToken)["sid"].(string)
	return s
}

// sessions counts the user's Keycloak sessions through the admin API.
func sessions(t *testing.T, env *testenv.Env, userID string) int {
	t.Helper()
	resp, err := env.Client.PostForm(env.KeycloakURL+"/realms/"+testenv.Realm+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {testenv.AdminClient}, "client_secret": {testenv.AdminSecret}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	req, _ := http.NewRequest("GET", env.KeycloakURL+"/admin/realms/"+testenv.Realm+"/users/"+userID+"/sessions", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = env.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("sessions: %d %s", resp.StatusCode, b)
	}
	var list []any
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// authz asks the sidecar's forward-auth endpoint about a request.
func authz(t *testing.T, env *testenv.Env, accessToken, method, uri string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", env.SidecarURL+"/v1/authz", nil)
	req.Header.Set("X-Original-Method", method)
	req.Header.Set("X-Original-URI", uri)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := env.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// stepUp runs the challenge API with factor and code and returns the
// refreshed tokens it hands back.
func stepUp(t *testing.T, env *testenv.Env, access, refresh, factor, code string) (map[string]any, int) {
	t.Helper()
	resp, body := env.Do(t, "POST", "/v1/stepup/challenges", access, map[string]any{
		"factor": factor, "acr_values": "2", "action": map[string]string{"method": "POST", "uri": "/api/profile"}})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create challenge: %d %s", resp.StatusCode, body)
	}
	id, _ := testenv.DecodeJSON(t, body)["challenge_id"].(string)
	resp, body = env.Do(t, "POST", "/v1/stepup/challenges/"+id+"/verify", access, map[string]any{"code": code, "refresh_token": refresh})
	return testenv.DecodeJSON(t, body), resp.StatusCode
}

// TestLoginWithMFA: (1) a user with a factor gets no token until it is
// verified, and failing it leaves no usable session.
func TestLoginWithMFA(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Mutate: func(c *config.Config) { c.Login.MaxAttempts = 3 }})
	direct := env.PasswordTokens(t, "alice", "alice")
	alice := subject(t, direct.AccessToken)
	codes := enrolBackupCodes(t, env, alice)

	login := func() (map[string]any, *http.Response) {
		resp, body := env.Do(t, "POST", "/v1/login", "", map[string]string{"username": "alice", "password": "alice"})
		return testenv.DecodeJSON(t, body), resp
	}

	t.Run("wrong password", func(t *testing.T) {
		resp, body := env.Do(t, "POST", "/v1/login", "", map[string]string{"username": "alice", "password": "nope"})
		if resp.StatusCode != 401 || !strings.Contains(string(body), "invalid_grant") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("no tokens before the factor", func(t *testing.T) {
		m, resp := login()
		if resp.StatusCode != 401 || m["error"] != "mfa_required" {
			t.Fatalf("login = %d %v", resp.StatusCode, m)
		}
		if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="mfa_required"`) {
			t.Fatalf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
		}
		for _, k := range []string{"access_token", "refresh_token", "id_token"} {
			if _, ok := m[k]; ok {
				t.Fatalf("login leaked %s before the second factor", k)
			}
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Fatal("login set a cookie before the second factor")
		}
		if m["mfa_token"] == "" || m["expires_in"] == nil {
			t.Fatalf("pending login body = %v", m)
		}
	})

	t.Run("failing the factor logs the Keycloak session out", func(t *testing.T) {
		before := sessions(t, env, alice)
		m, _ := login()
		if got := sessions(t, env, alice); got != before+1 {
			t.Fatalf("pending login holds %d sessions, want %d", got, before+1)
		}
		mfa := m["mfa_token"].(string)
		var last map[string]any
		var status int
		for i := 0; i < 3; i++ {
			resp, body := env.Do(t, "POST", "/v1/login/mfa", "", map[string]string{"mfa_token": mfa, "factor": "backup_code", "code": "AAAAA-AAAAA"})
			last, status = testenv.DecodeJSON(t, body), resp.StatusCode
		}
		if status != 401 || last["error"] != "mfa_failed" {
			t.Fatalf("third wrong code = %d %v", status, last)
		}
		if got := sessions(t, env, alice); got != before {
			t.Fatalf("aborted login left %d sessions, want %d", got, before)
		}
		// The pending login is gone: even the right code does nothing now.
		resp, body := env.Do(t, "POST", "/v1/login/mfa", "", map[string]string{"mfa_token": mfa, "factor": "backup_code", "code": codes[0]})
		if resp.StatusCode != 404 {
			t.Fatalf("code after abort = %d %s", resp.StatusCode, body)
		}
	})

	t.Run("the right code releases tokens carrying the step-up", func(t *testing.T) {
		m, _ := login()
		mfa := m["mfa_token"].(string)
		resp, body := env.Do(t, "POST", "/v1/login/mfa", "", map[string]string{"mfa_token": mfa, "factor": "backup_code", "code": codes[1]})
		if resp.StatusCode != 200 {
			t.Fatalf("mfa = %d %s", resp.StatusCode, body)
		}
		g := testenv.DecodeJSON(t, body)
		toks, _ := g["tokens"].(map[string]any)
		access, _ := toks["access_token"].(string)
		if g["acr"] != "2" || access == "" || toks["refresh_token"] == "" {
			t.Fatalf("grant = %v", g)
		}
		entries := stepUpEntries(t, access)
		if len(entries) == 0 || entries[len(entries)-1].SID != sid(t, access) || entries[len(entries)-1].ACR != "2" {
			t.Fatalf("released token's step-up entries = %+v (sid %s)", entries, sid(t, access))
		}
		// The same mfa_token cannot be used twice.
		resp, _ = env.Do(t, "POST", "/v1/login/mfa", "", map[string]string{"mfa_token": mfa, "factor": "backup_code", "code": codes[2]})
		if resp.StatusCode != http.StatusConflict {
			t.Fatalf("second use of an mfa_token = %d", resp.StatusCode)
		}
	})

	t.Run("a user without a factor gets tokens at once", func(t *testing.T) {
		resp, body := env.Do(t, "POST", "/v1/login", "", map[string]string{"username": "bob", "password": "bob"})
		if resp.StatusCode != 200 || !strings.Contains(string(body), "access_token") {
			t.Fatalf("bob: %d %s", resp.StatusCode, body)
		}
	})
}

// TestStepUpIsBoundToTheSession: (2) the refreshed token after a step-up
// carries an entry for its own session only; another session of the same
// user does not gain the level. (5) The user cannot forge an entry.
func TestStepUpIsBoundToTheSession(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	a := env.PasswordTokens(t, "alice", "alice")
	b := env.PasswordTokens(t, "alice", "alice")
	alice := subject(t, a.AccessToken)
	enrolPIN(t, env, alice, "4826")

	if got := stepUpEntries(t, a.AccessToken); len(got) != 0 {
		t.Fatalf("token before step-up has entries %+v", got)
	}
	if resp := authz(t, env, a.AccessToken, "POST", "/api/profile"); resp.StatusCode != 401 ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_user_authentication"`) {
		t.Fatalf("write before step-up: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	g, status := stepUp(t, env, a.AccessToken, a.RefreshToken, "pin", "0000")
	if status != 400 || g["error"] != "invalid_code" {
		t.Fatalf("wrong PIN: %d %v", status, g)
	}
	g, status = stepUp(t, env, a.AccessToken, a.RefreshToken, "pin", "4826")
	if status != 200 {
		t.Fatalf("step-up: %d %v", status, g)
	}
	toks := g["tokens"].(map[string]any)
	aFresh := toks["access_token"].(string)
	entries := stepUpEntries(t, aFresh)
	if len(entries) != 1 || entries[0].SID != sid(t, a.AccessToken) || entries[0].ACR != "2" || entries[0].AMR[0] != "pin" {
		t.Fatalf("entries after step-up = %+v", entries)
	}
	if resp := authz(t, env, aFresh, "POST", "/api/profile"); resp.StatusCode != 200 || resp.Header.Get("X-Auth-Acr") != "2" {
		t.Fatalf("write after step-up: %d acr=%q", resp.StatusCode, resp.Header.Get("X-Auth-Acr"))
	}

	// Session B of the same user sees the entry (one attribute per user)
	// but it names session A: B stays at level 1.
	bFresh := env.Refresh(t, b.RefreshToken)
	if got := stepUpEntries(t, bFresh.AccessToken); len(got) != 1 || got[0].SID == sid(t, bFresh.AccessToken) {
		t.Fatalf("session B entries = %+v", got)
	}
	if resp := authz(t, env, bFresh.AccessToken, "POST", "/api/profile"); resp.StatusCode != 401 {
		t.Fatalf("session B gained the level: %d", resp.StatusCode)
	}

	// (5) Alice edits her own attributes through Keycloak's account API.
	forged := `{"sid":"` + sid(t, bFresh.AccessToken) + `","acr":"2","amr":["pin"],"iat":` +
		jsonInt(time.Now().Unix()) + `,"exp":` + jsonInt(time.Now().Add(time.Hour).Unix()) + `}`
	acct := map[string]any{"username": "alice", "email": "alice@example.test", "firstName": "Alice", "lastName": "Liddell",
		"attributes": map[string][]string{"stepup": {forged}}}
	body, _ := json.Marshal(acct)
	req, _ := http.NewRequest("POST", env.KeycloakURL+"/realms/"+testenv.Realm+"/account", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+bFresh.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := env.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(rb), "read-only") {
		t.Fatalf("account API accepted a forged step-up: %d %s", resp.StatusCode, rb)
	}
	bAgain := env.Refresh(t, bFresh.RefreshToken)
	if resp := authz(t, env, bAgain.AccessToken, "POST", "/api/profile"); resp.StatusCode != 401 {
		t.Fatalf("forged step-up took effect: %d", resp.StatusCode)
	}

	// The audit trail ties the grant to the request the client meant to make.
	events, err := env.Runtime.Store().ListAudit(context.Background(), store.AuditQuery{UserID: alice, Types: []string{"stepup.granted"}})
	if err != nil || len(events) != 1 {
		t.Fatalf("stepup.granted events = %v, %v", events, err)
	}
	d := events[0].Details
	if d["action_method"] != "POST" || d["action_uri"] != "/api/profile" || d["acr"] != "2" || events[0].SessionID != sid(t, a.AccessToken) || events[0].IP == "" {
		t.Fatalf("audit event = %+v", events[0])
	}

	// The challenge is single use.
	resp2, body2 := env.Do(t, "POST", "/v1/stepup/challenges", aFresh, map[string]any{"factor": "pin"})
	id := testenv.DecodeJSON(t, body2)["challenge_id"].(string)
	if resp2.StatusCode != 201 {
		t.Fatal(resp2.StatusCode)
	}
	if r, b := env.Do(t, "POST", "/v1/stepup/challenges/"+id+"/verify", aFresh, map[string]any{"code": "4826"}); r.StatusCode != 200 {
		t.Fatalf("verify: %d %s", r.StatusCode, b)
	}
	if r, _ := env.Do(t, "POST", "/v1/stepup/challenges/"+id+"/verify", aFresh, map[string]any{"code": "4826"}); r.StatusCode != http.StatusConflict {
		t.Fatalf("second verify of one challenge = %d", r.StatusCode)
	}
	// Another session cannot answer it.
	if r, _ := env.Do(t, "POST", "/v1/stepup/challenges/"+id+"/verify", bAgain.AccessToken, map[string]any{"code": "4826"}); r.StatusCode != 404 {
		t.Fatalf("verify from another session = %d", r.StatusCode)
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestStepUpEntryExpires: (3) an entry stops counting at its exp, even in
// a token that is still valid.
func TestStepUpEntryExpires(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Mutate: func(c *config.Config) { c.Claims.EntryTTL = time.Minute }})
	a := env.PasswordTokens(t, "alice", "alice")
	enrolPIN(t, env, subject(t, a.AccessToken), "4826")
	g, status := stepUp(t, env, a.AccessToken, a.RefreshToken, "pin", "4826")
	if status != 200 {
		t.Fatalf("step-up: %d %v", status, g)
	}
	fresh := g["tokens"].(map[string]any)["access_token"].(string)

	var offset time.Duration
	mw, err := policies.Middleware(context.Background(), policies.Config{
		Issuer: env.KeycloakURL + "/realms/" + testenv.Realm,
		Now:    func() time.Time { return time.Now().Add(offset) },
		// A max_age longer than the entry's life, so only exp can refuse.
		Policy: mustPolicy(t, `
levels: ["1", "2"]
rules:
  - name: writes
    match: {methods: [POST]}
    require: {acr: "2", max_age: 1h}
default: deny
`),
	})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	try := func() int {
		req, _ := http.NewRequest("POST", "/api/profile", nil)
		req.Header.Set("Authorization", "Bearer "+fresh)
		rec := &statusWriter{header: http.Header{}}
		h.ServeHTTP(rec, req)
		return rec.status
	}
	if s := try(); s != 204 {
		t.Fatalf("fresh entry refused: %d", s)
	}
	offset = 90 * time.Second // token (300 s) still valid, entry (60 s) expired
	if s := try(); s != 401 {
		t.Fatalf("expired entry still counts: %d", s)
	}
}

func mustPolicy(t *testing.T, y string) *policies.Policy {
	t.Helper()
	p, err := policies.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type statusWriter struct {
	header http.Header
	status int
}

func (w *statusWriter) Header() http.Header { return w.header }
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return len(b), nil
}
func (w *statusWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}

// TestPlanApply: (6) plan on a fresh realm lists the changes and exits 2,
// apply makes them, plan then exits 0 and a second apply changes nothing.
func TestPlanApply(t *testing.T) {
	env := testenv.Start(t, testenv.Options{SkipProvision: true})
	ctx := context.Background()
	var out bytes.Buffer
	err := app.Plan(ctx, env.Config, &out)
	var ec *app.ExitCodeError
	if !errors.As(err, &ec) || ec.Code != 2 {
		t.Fatalf("plan on a fresh realm = %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`+ user profile attribute "stepup"`,
		`+ client scope "stepup"`,
		`+ protocol mapper "stepup" in client scope "stepup"`,
		`+ default client scope "stepup" of client "stepup-login"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, out.String())
		}
	}

	// Before apply the write-back cannot stick: the bridge says so.
	a := env.PasswordTokens(t, "alice", "alice")
	enrolPIN(t, env, subject(t, a.AccessToken), "4826")
	g, status := stepUp(t, env, a.AccessToken, "", "pin", "4826")
	if status != 503 {
		t.Fatalf("step-up before apply = %d %v, want 503", status, g)
	}

	out.Reset()
	if err := app.Apply(ctx, env.Config, &out); err != nil {
		t.Fatalf("apply: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := app.Plan(ctx, env.Config, &out); err != nil {
		t.Fatalf("plan after apply = %v\n%s", err, out.String())
	}
	out.Reset()
	if err := app.Apply(ctx, env.Config, &out); err != nil || !strings.Contains(out.String(), "No changes") {
		t.Fatalf("second apply = %v\n%s", err, out.String())
	}

	// A realm where users may edit the attribute is drift, and apply fixes it.
	loosen(t, env)
	out.Reset()
	if err := app.Plan(ctx, env.Config, &out); !errors.As(err, &ec) || !strings.Contains(out.String(), `~ user profile attribute "stepup"`) {
		t.Fatalf("plan with a user-editable attribute = %v\n%s", err, out.String())
	}
	if err := app.Apply(ctx, env.Config, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := app.Plan(ctx, env.Config, io.Discard); err != nil {
		t.Fatalf("plan after fixing = %v", err)
	}
}

// loosen makes the step-up attribute user-editable, as a careless admin might.
func loosen(t *testing.T, env *testenv.Env) {
	t.Helper()
	tok := env.Runtime // keep the runtime alive; admin calls go through Keycloak directly
	_ = tok
	adminTok := adminToken(t, env)
	get := func() map[string]any {
		req, _ := http.NewRequest("GET", env.KeycloakURL+"/admin/realms/"+testenv.Realm+"/users/profile", nil)
		req.Header.Set("Authorization", "Bearer "+adminTok)
		resp, err := env.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	p := get()
	for _, a := range p["attributes"].([]any) {
		m := a.(map[string]any)
		if m["name"] == "stepup" {
			m["permissions"] = map[string]any{"view": []any{"admin", "user"}, "edit": []any{"admin", "user"}}
		}
	}
	b, _ := json.Marshal(p)
	req, _ := http.NewRequest("PUT", env.KeycloakURL+"/admin/realms/"+testenv.Realm+"/users/profile", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+adminTok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := env.Client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("loosening the profile: %v %v", err, resp)
	}
	resp.Body.Close()
}

func adminToken(t *testing.T, env *testenv.Env) string {
	t.Helper()
	resp, err := env.Client.PostForm(env.KeycloakURL+"/realms/"+testenv.Realm+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {testenv.AdminClient}, "client_secret": {testenv.AdminSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("admin token: %v", err)
	}
	return tok.AccessToken
}

// TestTwoReplicasLoseNoEntry: (4) two sidecars over one PostgreSQL step up
// the same user concurrently; the read-modify-write of the Keycloak user is
// serialised by the store's lease, so every entry survives.
func TestTwoReplicasLoseNoEntry(t *testing.T) {
	pgtest.Require(t)
	dsn := pgtest.FreshSchema(t)
	usePG := func(c *config.Config) {
		c.Store.Type = "postgres"
		c.Store.Postgres.DSN = config.Secret(dsn)
		c.Store.Postgres.MaxConns = 4
	}
	r1 := testenv.Start(t, testenv.Options{Mutate: usePG})
	// Replicas share the store, the realm and the keys.
	r2 := testenv.Start(t, testenv.Options{KC: r1.KC, Mutate: func(c *config.Config) {
		usePG(c)
		c.Secrets = r1.Config.Secrets
	}})

	const n = 8
	var toks [n]struct{ access, refresh string }
	for i := range toks {
		tk := r1.PasswordTokens(t, "alice", "alice")
		toks[i].access, toks[i].refresh = tk.AccessToken, tk.RefreshToken
	}
	alice := subject(t, toks[0].access)
	// Backup codes: one per session. (Concurrent PIN checks would count as
	// failures while in flight: the PIN lockout is pessimistic by design.)
	codes := enrolBackupCodes(t, r1, alice)

	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		env := r1
		if i%2 == 1 {
			env = r2
		}
		go func(i int, env *testenv.Env) {
			resp, body := env.Do(t, "POST", "/v1/stepup/challenges", toks[i].access, map[string]any{"factor": "backup_code"})
			if resp.StatusCode != 201 {
				errs <- errors.New("create: " + string(body))
				return
			}
			id := testenv.DecodeJSON(t, body)["challenge_id"].(string)
			resp, body = env.Do(t, "POST", "/v1/stepup/challenges/"+id+"/verify", toks[i].access, map[string]any{"code": codes[i]})
			if resp.StatusCode != 200 {
				errs <- errors.New("verify: " + string(body))
				return
			}
			errs <- nil
		}(i, env)
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	fresh := r1.Refresh(t, toks[0].refresh)
	got := map[string]bool{}
	for _, e := range stepUpEntries(t, fresh.AccessToken) {
		got[e.SID] = true
	}
	for i := range toks {
		if !got[sid(t, toks[i].access)] {
			t.Errorf("session %d lost its step-up entry (have %d of %d)", i, len(got), n)
		}
	}
}

// TestChallengesPerUserAreCapped: each open challenge is a stored row, so a
// user cannot open more than rate_limits.challenges_per_user_per_hour.
func TestChallengesPerUserAreCapped(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Mutate: func(c *config.Config) { c.RateLimits.ChallengesPerUserPerHour = 3 }})
	a := env.PasswordTokens(t, "alice", "alice")
	enrolPIN(t, env, subject(t, a.AccessToken), "4826")
	for i := 1; i <= 4; i++ {
		resp, body := env.Do(t, "POST", "/v1/stepup/challenges", a.AccessToken, map[string]any{"factor": "pin"})
		want := http.StatusCreated
		if i == 4 {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Fatalf("challenge %d = %d %s, want %d", i, resp.StatusCode, body, want)
		}
		if i == 4 && resp.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	// Another user is not affected.
	b := env.PasswordTokens(t, "bob", "bob")
	enrolPIN(t, env, subject(t, b.AccessToken), "4826")
	if resp, body := env.Do(t, "POST", "/v1/stepup/challenges", b.AccessToken, map[string]any{"factor": "pin"}); resp.StatusCode != 201 {
		t.Fatalf("bob's challenge = %d %s", resp.StatusCode, body)
	}
}

// TestReusedTOTPCodeIsRefusedAndNotified: a TOTP code already accepted is
// refused when entered again, and the user is told (ASVS 2.8.5).
func TestReusedTOTPCodeIsRefusedAndNotified(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Mutate: func(c *config.Config) {
		c.Notifications.Enabled = true
		c.Factors.Enabled = append(c.Factors.Enabled, "email") // the notification channel's sender (log, in tests)
	}})
	a := env.PasswordTokens(t, "alice", "alice")
	alice := subject(t, a.AccessToken)
	ctx := context.Background()
	enr, err := env.Runtime.Factors().Enrol(ctx, factors.TOTP, alice, factors.EnrolRequest{AccountName: "alice"}, factors.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(enr.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Runtime.Factors().Confirm(ctx, factors.TOTP, alice, code, factors.Meta{}); err != nil {
		t.Fatal(err)
	}
	g, status := stepUp(t, env, a.AccessToken, "", "totp", code)
	if status != 400 || g["error"] != "invalid_code" {
		t.Fatalf("reused TOTP code = %d %v", status, g)
	}
	resp, body := env.Do(t, "GET", "/v1/activity", a.AccessToken, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"code_reused"`) {
		t.Fatalf("activity after a reused code = %d %s", resp.StatusCode, body)
	}
}
