package browsertest

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

func TestLoginWithMFAInBrowser(t *testing.T) {
	sc := startSidecar(t)
	ctx := browser(t)
	dir := artifacts(t)
	_, sub := sc.passwordTokens(t, "alice", "alice")
	enr, err := sc.Factors.Enrol(context.Background(), factors.BackupCode, sub, factors.EnrolRequest{}, factors.Meta{})
	if err != nil {
		t.Fatal(err)
	}

	start := sc.URL + "/pages/login?" + url.Values{"return_to": {sc.AppURL + "/done"}}.Encode()
	run(t, ctx, "opening the login page", chromedp.Navigate(start), chromedp.WaitVisible("#username", chromedp.ByID))
	shot(t, ctx, dir, "01-login")

	// A wrong password first: the error is announced.
	run(t, ctx, "wrong password",
		chromedp.SendKeys("#username", "alice", chromedp.ByID),
		chromedp.SendKeys("#password", "wrong", chromedp.ByID),
		chromedp.Click("#sign-in", chromedp.ByID),
		chromedp.WaitVisible(`[role="alert"]`, chromedp.ByQuery))
	var described string
	var ok bool
	run(t, ctx, "reading aria-describedby", chromedp.AttributeValue("#password", "aria-describedby", &described, &ok, chromedp.ByID))
	if described != "form-error" {
		t.Fatalf("password field aria-describedby = %q", described)
	}
	shot(t, ctx, dir, "02-login-error")

	run(t, ctx, "signing in",
		chromedp.SendKeys("#password", "alice", chromedp.ByID),
		chromedp.Click("#sign-in", chromedp.ByID),
		chromedp.WaitVisible("#code", chromedp.ByID))
	if loc := location(t, ctx); !strings.HasPrefix(loc, sc.URL+"/pages/login/mfa") {
		t.Fatalf("after the password, at %s", loc)
	}
	// The browser holds the mfa cookie only: no Keycloak token anywhere.
	var cookies []string
	run(t, ctx, "reading cookies", chromedp.ActionFunc(func(ctx context.Context) error {
		cs, err := networkCookies(ctx)
		cookies = cs
		return err
	}))
	for _, c := range cookies {
		if strings.Contains(c, "eyJ") {
			t.Fatalf("a JWT in a cookie: %s", c)
		}
	}
	shot(t, ctx, dir, "03-mfa")

	run(t, ctx, "entering a backup code",
		chromedp.Click("#factor-backup_code", chromedp.ByID),
		chromedp.SendKeys("#code", enr.Codes[0], chromedp.ByID),
		chromedp.Click("#verify", chromedp.ByID),
		chromedp.WaitVisible("#done", chromedp.ByID))
	if loc := location(t, ctx); loc != sc.AppURL+"/done" {
		t.Fatalf("after the factor, at %s; want the return_to", loc)
	}
	evs, err := sc.Store.ListAudit(context.Background(), store.AuditQuery{UserID: sub, Types: []string{"login.granted"}})
	if err != nil || len(evs) != 1 || evs[0].Factor != factors.BackupCode {
		t.Fatalf("login.granted events = %+v, %v", evs, err)
	}
}

func TestStepUpInBrowser(t *testing.T) {
	sc := startSidecar(t)
	ctx := browser(t)
	dir := artifacts(t)
	access, sub := sc.passwordTokens(t, "alice", "alice")
	enr, err := sc.Factors.Enrol(context.Background(), factors.BackupCode, sub, factors.EnrolRequest{}, factors.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	start := sc.AppURL + "/start?" + url.Values{"entry": {"/pages/stepup"}, "token": {access}}.Encode()
	run(t, ctx, "handing over from the application",
		chromedp.Navigate(start), chromedp.Click("#go", chromedp.ByID),
		chromedp.WaitVisible("#continue", chromedp.ByID))
	shot(t, ctx, dir, "01-choose")
	run(t, ctx, "choosing backup codes",
		chromedp.Click("#factor-backup_code", chromedp.ByID), chromedp.Click("#continue", chromedp.ByID),
		chromedp.WaitVisible("#code", chromedp.ByID))

	// A wrong code: announced, attempts left shown, still on the code page.
	run(t, ctx, "a wrong code",
		chromedp.SendKeys("#code", "AAAA-BBBB-CCCC", chromedp.ByID), chromedp.Click("#verify", chromedp.ByID),
		chromedp.WaitVisible(`[role="alert"]`, chromedp.ByQuery))
	var alert string
	run(t, ctx, "reading the alert", chromedp.Text(`[role="alert"]`, &alert, chromedp.ByQuery))
	if !strings.Contains(alert, "attempts left") {
		t.Fatalf("alert = %q", alert)
	}
	shot(t, ctx, dir, "02-wrong-code")

	run(t, ctx, "the right code",
		chromedp.WaitVisible("#code", chromedp.ByID), chromedp.SendKeys("#code", enr.Codes[3], chromedp.ByID))
	shot(t, ctx, dir, "03-right-code")
	run(t, ctx, "submitting the right code", chromedp.Click("#verify", chromedp.ByID),
		chromedp.WaitVisible("#done", chromedp.ByID))
	if loc := location(t, ctx); loc != sc.AppURL+"/done" {
		t.Fatalf("after the step-up, at %s", loc)
	}
	evs, err := sc.Store.ListAudit(context.Background(), store.AuditQuery{UserID: sub, Types: []string{"stepup.granted"}})
	if err != nil || len(evs) != 1 || evs[0].Details["action_uri"] != sc.AppURL+"/done" {
		t.Fatalf("stepup.granted events = %+v, %v", evs, err)
	}
}

func TestTOTPEnrolmentInBrowser(t *testing.T) {
	sc := startSidecar(t)
	ctx := browser(t)
	dir := artifacts(t)
	access, sub := sc.passwordTokens(t, "bob", "bob")
	start := sc.AppURL + "/start?" + url.Values{"entry": {"/pages/factors"}, "token": {access}}.Encode()
	run(t, ctx, "handing over from the application",
		chromedp.Navigate(start), chromedp.Click("#go", chromedp.ByID),
		chromedp.WaitVisible("#enrol-totp", chromedp.ByID))
	shot(t, ctx, dir, "01-factors")
	var secret string
	var qrWidth int64
	run(t, ctx, "starting TOTP enrolment",
		chromedp.Click("#enrol-totp", chromedp.ByID),
		chromedp.WaitVisible("#qr", chromedp.ByID),
		chromedp.Text("#secret", &secret, chromedp.ByID),
		chromedp.Evaluate(`document.getElementById("qr").naturalWidth`, &qrWidth))
	if qrWidth == 0 {
		t.Fatal("the QR image did not load (CSP or data: URL)")
	}
	shot(t, ctx, dir, "02-totp-qr")
	code, err := totp.GenerateCode(strings.TrimSpace(secret), time.Now())
	if err != nil {
		t.Fatalf("secret %q from the page: %v", secret, err)
	}
	run(t, ctx, "confirming",
		chromedp.SendKeys("#code", code, chromedp.ByID), chromedp.Click("#confirm", chromedp.ByID),
		chromedp.WaitVisible("#form-notice", chromedp.ByID))
	shot(t, ctx, dir, "03-confirmed")
	active, err := sc.Factors.Active(context.Background(), sub)
	if err != nil || !slices.Contains(active, factors.TOTP) {
		t.Fatalf("active factors after the page = %v, %v", active, err)
	}
	// Now a factor is active: without a step-up the page offers no changes.
	run(t, ctx, "reopening from the application",
		chromedp.Navigate(start), chromedp.Click("#go", chromedp.ByID),
		chromedp.WaitVisible("#form-notice", chromedp.ByID))
	var n int
	run(t, ctx, "counting enrol buttons", chromedp.Evaluate(`document.querySelectorAll("[id^=enrol-]").length`, &n))
	if n != 0 {
		t.Fatalf("%d enrol buttons without a recent step-up", n)
	}
}

func TestBackupCodesPageInBrowser(t *testing.T) {
	sc := startSidecar(t)
	ctx := browser(t)
	dir := artifacts(t)
	access, sub := sc.passwordTokens(t, "carol", "carol")
	start := sc.AppURL + "/start?" + url.Values{"entry": {"/pages/factors"}, "token": {access}}.Encode()
	var codes string
	run(t, ctx, "generating backup codes",
		chromedp.Navigate(start), chromedp.Click("#go", chromedp.ByID),
		chromedp.WaitVisible("#enrol-backup_code", chromedp.ByID),
		chromedp.Click("#enrol-backup_code", chromedp.ByID),
		chromedp.WaitVisible("#codes", chromedp.ByID),
		chromedp.Text("#codes", &codes, chromedp.ByID))
	shot(t, ctx, dir, "01-backup-codes")
	first := strings.Fields(codes)[0]
	if _, err := sc.Factors.Verify(context.Background(), factors.BackupCode, sub, first, factors.Meta{}); err != nil {
		t.Fatalf("a code shown on the page does not verify: %v", err)
	}
}
