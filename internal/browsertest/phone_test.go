package browsertest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
)

// TestPhoneEnrolmentInBrowser: a user with backup codes steps up, opens
// the factors page, enters a phone number, receives the first SMS at a
// local gateway (the signed-webhook sender) and confirms with its code.
func TestPhoneEnrolmentInBrowser(t *testing.T) {
	var (
		mu    sync.Mutex
		texts []string
	)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Text string }
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &m)
		mu.Lock()
		texts = append(texts, m.Text)
		mu.Unlock()
		_, _ = w.Write([]byte(`{}`))
	}))
	defer gw.Close()
	sc := startSidecar(t, func(c *config.Config) {
		c.Factors.Enabled = append(c.Factors.Enabled, "sms")
		c.Factors.SMS.Sender = "webhook"
		c.Factors.SMS.Webhook = config.Webhook{URL: gw.URL, Secret: "a-webhook-secret-of-length"}
	})
	ctx := browser(t)
	dir := artifacts(t)
	access, refresh, sub := sc.passwordTokensWithRefresh(t, "alice", "alice")
	enr, err := sc.Factors.Enrol(context.Background(), factors.BackupCode, sub, factors.EnrolRequest{}, factors.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	access = sc.stepUpJSON(t, access, refresh, enr.Codes[0])

	start := sc.AppURL + "/start?" + url.Values{"entry": {"/pages/factors"}, "token": {access}}.Encode()
	run(t, ctx, "opening the factors page after a step-up",
		chromedp.Navigate(start), chromedp.Click("#go", chromedp.ByID),
		chromedp.WaitVisible("#destination-sms", chromedp.ByID))
	shot(t, ctx, dir, "01-factors-with-phone")
	var delivery string
	run(t, ctx, "entering the phone number",
		chromedp.SendKeys("#destination-sms", "+49 170 1234567", chromedp.ByID),
		chromedp.Click("#enrol-sms", chromedp.ByID),
		chromedp.WaitVisible("#delivery", chromedp.ByID),
		chromedp.Text("#delivery", &delivery, chromedp.ByID))
	shot(t, ctx, dir, "02-code-sent")
	if strings.Contains(delivery, "1234567") || !strings.Contains(delivery, "+49") {
		t.Fatalf("delivery notice %q must show the masked number", delivery)
	}
	mu.Lock()
	if len(texts) != 1 {
		mu.Unlock()
		t.Fatalf("%d messages sent, want 1", len(texts))
	}
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(texts[0])
	mu.Unlock()
	run(t, ctx, "confirming with the received code",
		chromedp.SendKeys("#code", code, chromedp.ByID), chromedp.Click("#confirm", chromedp.ByID),
		chromedp.WaitVisible("#form-notice", chromedp.ByID))
	shot(t, ctx, dir, "03-phone-confirmed")
	active, err := sc.Factors.Active(context.Background(), sub)
	if err != nil || !slices.Contains(active, factors.SMS) {
		t.Fatalf("active factors after the page = %v, %v", active, err)
	}
}
