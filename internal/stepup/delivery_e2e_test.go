package stepup_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/internal/testenv"
)

// smsGateway is a local SMS gateway behind the signed-webhook sender: it
// keeps every message, as a provider's delivery report would show them.
type smsGateway struct {
	mu   sync.Mutex
	msgs []struct{ To, Text string }
}

func (g *smsGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m struct {
		Type, To, Text string
	}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &m); err != nil || r.Header.Get("X-Stepup-Signature") == "" {
		http.Error(w, "bad request", 400)
		return
	}
	g.mu.Lock()
	g.msgs = append(g.msgs, struct{ To, Text string }{m.To, m.Text})
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"queued"}`))
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

// lastCode returns the code of the newest message and how many were sent.
func (g *smsGateway) lastCode(t *testing.T) (string, int) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.msgs) == 0 {
		t.Fatal("no SMS sent")
	}
	code := sixDigits.FindString(g.msgs[len(g.msgs)-1].Text)
	if code == "" {
		t.Fatalf("no code in %q", g.msgs[len(g.msgs)-1].Text)
	}
	return code, len(g.msgs)
}

// TestSMSEnrolmentAndStepUp drives a delivering factor through the HTTP
// API: SMS is never a first factor, so alice steps up with a backup code,
// enrols her phone, confirms it with the first SMS, and then steps up with
// an SMS code; a page refresh within the cool-down sends nothing new.
func TestSMSEnrolmentAndStepUp(t *testing.T) {
	gw := &smsGateway{}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	env := testenv.Start(t, testenv.Options{Mutate: func(c *config.Config) {
		c.Factors.Enabled = append(c.Factors.Enabled, "sms")
		c.Factors.SMS.Sender = "webhook"
		c.Factors.SMS.Webhook = config.Webhook{URL: srv.URL, Secret: "a-webhook-secret-of-length"}
	}})
	tok := env.PasswordTokens(t, "alice", "alice")
	codes := enrolBackupCodes(t, env, subject(t, tok.AccessToken))

	// Enrolling another factor once one is active needs a recent step-up.
	resp, body := env.Do(t, "POST", "/v1/factors/sms", tok.AccessToken, map[string]any{"destination": "+49 170 1234567"})
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_user_authentication") {
		t.Fatalf("enrol without step-up = %d %s", resp.StatusCode, body)
	}
	g, status := stepUp(t, env, tok.AccessToken, tok.RefreshToken, "backup_code", codes[0])
	if status != 200 {
		t.Fatalf("step-up: %d %v", status, g)
	}
	fresh := g["tokens"].(map[string]any)
	access, refresh := fresh["access_token"].(string), fresh["refresh_token"].(string)

	for _, bad := range []map[string]any{{}, {"destination": "call me"}, {"destination": "+49 170 1234567", "pin": "1234"}} {
		if resp, body := env.Do(t, "POST", "/v1/factors/sms", access, bad); resp.StatusCode != 400 {
			t.Fatalf("enrol with %v = %d %s", bad, resp.StatusCode, body)
		}
	}
	resp, body = env.Do(t, "POST", "/v1/factors/sms", access, map[string]any{"destination": "+49 170 1234567"})
	if resp.StatusCode != 201 || !strings.Contains(string(body), `"pending"`) {
		t.Fatalf("enrol = %d %s", resp.StatusCode, body)
	}
	resp, body = env.Do(t, "POST", "/v1/factors/sms/send", access, map[string]any{})
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"+49`) || strings.Contains(string(body), "1234567") {
		t.Fatalf("send = %d %s (destination must be masked)", resp.StatusCode, body)
	}
	code, sent := gw.lastCode(t)
	gw.mu.Lock()
	to := gw.msgs[0].To
	gw.mu.Unlock()
	if to != "+491701234567" {
		t.Fatalf("SMS went to %q, want the E.164 number", to)
	}
	// A refresh of the page: nothing new is sent, the first code stays valid.
	if resp, body := env.Do(t, "POST", "/v1/factors/sms/send", access, map[string]any{}); resp.StatusCode != 200 {
		t.Fatalf("second send = %d %s", resp.StatusCode, body)
	}
	if _, n := gw.lastCode(t); n != sent {
		t.Fatalf("a send within the cool-down sent %d more", n-sent)
	}
	if resp, body := env.Do(t, "POST", "/v1/factors/sms/confirm", access, map[string]any{"code": code}); resp.StatusCode != 200 {
		t.Fatalf("confirm = %d %s", resp.StatusCode, body)
	}

	// Step up with SMS: the challenge delivers a new code.
	resp, body = env.Do(t, "POST", "/v1/stepup/challenges", access, map[string]any{"factor": "sms"})
	if resp.StatusCode != 201 || !strings.Contains(string(body), `"channel":"sms"`) {
		t.Fatalf("sms challenge = %d %s", resp.StatusCode, body)
	}
	id := testenv.DecodeJSON(t, body)["challenge_id"].(string)
	code, _ = gw.lastCode(t)
	resp, body = env.Do(t, "POST", "/v1/stepup/challenges/"+id+"/verify", access, map[string]any{"code": code, "refresh_token": refresh})
	if resp.StatusCode != 200 {
		t.Fatalf("sms verify = %d %s", resp.StatusCode, body)
	}
	g = testenv.DecodeJSON(t, body)
	entries := stepUpEntries(t, g["tokens"].(map[string]any)["access_token"].(string))
	if len(entries) == 0 || entries[len(entries)-1].AMR[0] != "sms" {
		t.Fatalf("entries after the SMS step-up = %+v", entries)
	}
	// The same SMS code is single use.
	resp, body = env.Do(t, "POST", "/v1/stepup/challenges", access, map[string]any{"factor": "sms"})
	if resp.StatusCode != 201 {
		t.Fatalf("second sms challenge = %d %s", resp.StatusCode, body)
	}
	id = testenv.DecodeJSON(t, body)["challenge_id"].(string)
	if resp, body := env.Do(t, "POST", "/v1/stepup/challenges/"+id+"/verify", access, map[string]any{"code": code}); resp.StatusCode != 400 {
		t.Fatalf("reused SMS code = %d %s", resp.StatusCode, body)
	}
}
