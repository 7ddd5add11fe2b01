package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binary is built once by TestMain: the tests run the real command as an
// operator would, exit codes included.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stepup-bridge-cmd")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "stepup-bridge")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// validEnv is a complete configuration for serve, on a free port.
func validEnv(t *testing.T) []string {
	t.Helper()
	key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"STEPUP_KEYCLOAK_URL=http://127.0.0.1:1",
		"STEPUP_KEYCLOAK_REALM=acme",
		"STEPUP_KEYCLOAK_CLIENT_ID=web",
		"STEPUP_KEYCLOAK_ADMIN_CLIENT_ID=svc",
		"STEPUP_KEYCLOAK_ADMIN_CLIENT_SECRET=very-secret-admin",
		"STEPUP_SECRETS_ENCRYPTION_KEYS=k1:" + key,
		"STEPUP_SECRETS_PEPPER=" + key,
		"STEPUP_STORE_SQLITE_PATH=" + filepath.Join(t.TempDir(), "s.db"),
	}
}

func run(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return so.String(), se.String(), code
}

func TestBadConfigExitsNamingTheKey(t *testing.T) {
	tests := []struct {
		name    string
		extra   []string
		args    []string
		wantKey string
	}{
		{"bad duration", []string{"STEPUP_STEPUP_CHALLENGE_TTL=soon"}, nil, "stepup.challenge_ttl"},
		{"unknown env key", []string{"STEPUP_KEYCLOAK_REALMM=x"}, nil, "STEPUP_KEYCLOAK_REALMM"},
		{"bad url flag", nil, []string{"--keycloak-url", "not a url"}, "keycloak.url"},
		{"unknown --set key", nil, []string{"--set", "nope=1"}, "nope"},
		{"missing file", nil, []string{"--config", "/nonexistent/config.yaml"}, "/nonexistent/config.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := run(t, append(validEnv(t), tc.extra...), append([]string{"serve"}, tc.args...)...)
			if code == 0 {
				t.Fatal("serve accepted a bad config")
			}
			if !strings.Contains(stderr, tc.wantKey) {
				t.Fatalf("stderr does not name %q:\n%s", tc.wantKey, stderr)
			}
		})
	}
}

func TestPrintConfigRedactsSecrets(t *testing.T) {
	stdout, stderr, code := run(t, validEnv(t), "serve", "--print-config", "--log-level", "debug")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout, "very-secret-admin") || strings.Contains(stdout, base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))) {
		t.Fatal("print-config shows a secret")
	}
	for _, want := range []string{"admin_client_secret: '[redacted]'", "level: debug", "realm: acme"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("print-config lacks %q:\n%s", want, stdout)
		}
	}
}

func TestVersion(t *testing.T) {
	stdout, _, code := run(t, validEnv(t), "version")
	if code != 0 || !strings.HasPrefix(stdout, "stepup-bridge ") {
		t.Fatalf("version: %d %q", code, stdout)
	}
}

func TestPlanNeedsKeycloak(t *testing.T) {
	// Keycloak at 127.0.0.1:1 refuses: plan fails (not 0, not 2) and says why.
	_, stderr, code := run(t, validEnv(t), "plan")
	if code == 0 || code == 2 {
		t.Fatalf("plan against an unreachable Keycloak exited %d", code)
	}
	if !strings.Contains(strings.ToLower(stderr), "keycloak") {
		t.Fatalf("stderr: %s", stderr)
	}
}

// TestDevStartsAndIsReady: `stepup-bridge dev` on embedded defaults serves
// /readyz 200, prints its walk-through, and stops cleanly on SIGTERM.
func TestDevStartsAndIsReady(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	dir := t.TempDir()
	cmd := exec.Command(binary, "dev", "--listen", addr, "--data-dir", filepath.Join(dir, "data"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var printed strings.Builder
	deadline := time.After(60 * time.Second)
wait:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("dev exited early:\n%s", printed.String())
			}
			printed.WriteString(line + "\n")
			if strings.Contains(line, "S=http://"+addr+";") {
				break wait
			}
		case <-deadline:
			t.Fatalf("no walk-through within 60s:\n%s", printed.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	if !regexp.MustCompile(`Keycloak-compatible http://127\.0\.0\.1:\d+`).MatchString(printed.String()) {
		t.Errorf("walk-through lacks the Keycloak URL:\n%s", printed.String())
	}

	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ready":true`) {
		t.Fatalf("readyz = %d %s", resp.StatusCode, body)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev did not exit cleanly on SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30s of SIGTERM")
	}
	// The keys and the store persist for the next start.
	for _, f := range []string{"dev-secrets", "stepup.db"} {
		st, err := os.Stat(filepath.Join(dir, "data", f))
		if err != nil {
			t.Fatalf("%s not kept: %v", f, err)
		}
		if f == "dev-secrets" && st.Mode().Perm() != 0o600 {
			t.Fatalf("dev-secrets mode %v, want 0600", st.Mode().Perm())
		}
	}
}
