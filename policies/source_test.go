package policies

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const policyV1 = "levels: [\"1\", \"2\"]\nrules:\n  - name: v1\n    require: {acr: \"1\"}\ndefault: deny\n"
const policyV2 = "levels: [\"1\", \"2\"]\nrules:\n  - name: v2\n    require: {acr: \"2\"}\ndefault: deny\n"
const policyBad = "levels: [\"1\", \"2\"]\nrules:\n  - name: broken\n    require: {acr: \"7\"}\ndefault: deny\n"

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomic, as editors and config tools do
		t.Fatal(err)
	}
}

func firstRule(s Source) string { return s.Policy().Rules()[0].Label() }

// waitFor polls cond for up to 5 seconds (file events are asynchronous).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newSource(t *testing.T, path string) (*FileSource, *Metrics) {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewFileSource(path, FileSourceOptions{Metrics: m, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s, m
}

func TestFileSourceReloadKeepsOldPolicyOnError(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyV1)
	s, m := newSource(t, path)
	if got := firstRule(s); got != "v1" {
		t.Fatalf("first rule %q, want v1", got)
	}
	writeFile(t, path, policyBad)
	err := s.Reload()
	if !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("Reload of a bad file = %v, want ErrInvalidPolicy", err)
	}
	if got := firstRule(s); got != "v1" {
		t.Errorf("after a bad reload the policy is %q, want v1 kept", got)
	}
	st := s.Stats()
	if st.Loads != 1 || st.Failures != 1 || st.LastError == nil {
		t.Errorf("stats %+v, want 1 load, 1 failure, an error", st)
	}
	if testutil.ToFloat64(m.lastFailed) != 1 || testutil.ToFloat64(m.reloads.WithLabelValues("failure")) != 1 {
		t.Error("metrics do not show the failed reload")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Error("Reload of a missing file succeeded")
	}
	writeFile(t, path, policyV2)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := firstRule(s); got != "v2" {
		t.Errorf("policy %q, want v2", got)
	}
	if st := s.Stats(); st.Loads != 2 || st.LastError != nil {
		t.Errorf("stats %+v, want 2 loads and no error", st)
	}
	if testutil.ToFloat64(m.lastFailed) != 0 || testutil.ToFloat64(m.reloads.WithLabelValues("success")) != 2 {
		t.Error("metrics do not show the successful reload")
	}
}

func TestNewFileSourceRefusesInvalidFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyBad)
	if _, err := NewFileSource(path, FileSourceOptions{Logger: slog.New(slog.DiscardHandler)}); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("NewFileSource = %v, want ErrInvalidPolicy", err)
	}
}

func TestFileSourceSIGHUP(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyV1)
	s, _ := newSource(t, path)
	sig := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, WatchOptions{Signals: sig}) }() // no file watching
	writeFile(t, path, policyV2)
	time.Sleep(50 * time.Millisecond)
	if got := firstRule(s); got != "v1" {
		t.Fatalf("policy changed to %q without a signal or file watching", got)
	}
	sig <- syscall.SIGHUP
	waitFor(t, "SIGHUP reload", func() bool { return firstRule(s) == "v2" })
	// SIGHUP reloads even an unchanged file.
	sig <- syscall.SIGHUP
	waitFor(t, "second SIGHUP reload", func() bool { return s.Stats().Loads == 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch = %v", err)
	}
}

func TestFileSourceWatchesFileChanges(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyV1)
	s, _ := newSource(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Watch(ctx, WatchOptions{Files: true, Debounce: 20 * time.Millisecond}) }()
	time.Sleep(50 * time.Millisecond) // let the watcher start
	writeFile(t, path, policyV2)
	waitFor(t, "reload on file change", func() bool { return firstRule(s) == "v2" })
	writeFile(t, path, policyBad)
	waitFor(t, "failed reload recorded", func() bool { return s.Stats().Failures == 1 })
	if got := firstRule(s); got != "v2" {
		t.Errorf("invalid file replaced the policy: %q", got)
	}
	writeFile(t, path, policyV1)
	waitFor(t, "recovery", func() bool { return firstRule(s) == "v1" })
}

// TestFileSourceConfigMapSwap reproduces how the kubelet updates a mounted
// ConfigMap: policy.yaml -> ..data/policy.yaml, ..data -> ..<timestamp>,
// and an update renames a new ..data symlink over the old one.
func TestFileSourceConfigMapSwap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mkVersion := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "policy.yaml"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mkVersion("..2024_01_01", policyV1)
	if err := os.Symlink("..2024_01_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "policy.yaml"), filepath.Join(dir, "policy.yaml")); err != nil {
		t.Fatal(err)
	}
	s, _ := newSource(t, filepath.Join(dir, "policy.yaml"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Watch(ctx, WatchOptions{Files: true, Debounce: 20 * time.Millisecond}) }()
	time.Sleep(50 * time.Millisecond)
	mkVersion("..2024_01_02", policyV2)
	if err := os.Symlink("..2024_01_02", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reload after the ..data swap", func() bool { return firstRule(s) == "v2" })
}

func TestStaticSourceAndDefault(t *testing.T) {
	t.Parallel()
	p := Default()
	if StaticSource(p).Policy() != p {
		t.Error("StaticSource does not return its policy")
	}
}
