package charttest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// releaseName is the release every rendering uses; object names derive from it.
const releaseName = "t"

// fullname is the release's full name as the chart builds it.
const fullname = releaseName + "-stepup-bridge"

// obj is one rendered Kubernetes object.
type obj = map[string]any

// manifest is a whole rendering, in document order.
type manifest []obj

// repoRoot finds the module root by walking up to go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

func chartDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "charts", "stepup-bridge")
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// inCI reports whether missing tools must fail the run instead of skipping.
func inCI() bool { return os.Getenv("CI") == "true" }

// helmBinary finds helm: HELM_BIN, then <repo>/bin/helm, then PATH. Missing
// helm fails under CI=true and skips otherwise.
func helmBinary(t *testing.T) string {
	t.Helper()
	var tried []string
	if p := os.Getenv("HELM_BIN"); p != "" {
		if isExecutable(p) {
			return p
		}
		tried = append(tried, "HELM_BIN="+p)
	}
	local := filepath.Join(repoRoot(t), "bin", "helm")
	if isExecutable(local) {
		return local
	}
	tried = append(tried, local)
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	tried = append(tried, "helm on PATH")
	msg := "helm not found (tried " + strings.Join(tried, ", ") + "); `make tools` builds it into ./bin/helm"
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// helmResult is one helm run.
type helmResult struct {
	stdout, stderr string
	err            error
}

// runHelm runs helm with a private config/cache/data home, so the test
// neither reads nor writes the user's helm state.
func runHelm(t *testing.T, args ...string) helmResult {
	t.Helper()
	bin := helmBinary(t)
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("helm %s: timed out", strings.Join(args, " "))
	}
	return helmResult{stdout: out.String(), stderr: errb.String(), err: err}
}

// haValues is the HA values file shipped with the chart.
func haValues(t *testing.T) string {
	t.Helper()
	return filepath.Join(chartDir(t), "ci", "ha-values.yaml")
}

// template renders the chart and fails the test if helm refuses.
func template(t *testing.T, args ...string) manifest {
	t.Helper()
	res := templateResult(t, args...)
	if res.err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), res.err, res.stderr)
	}
	m, err := parseManifest(res.stdout)
	if err != nil {
		t.Fatalf("parsing rendered manifest: %v\n%s", err, res.stdout)
	}
	return m
}

// templateResult renders the chart and returns whatever helm said.
func templateResult(t *testing.T, args ...string) helmResult {
	t.Helper()
	full := append([]string{"template", releaseName, chartDir(t), "--namespace", "stepup"}, args...)
	return runHelm(t, full...)
}

// parseManifest splits a multi-document rendering into objects. Duplicate
// keys and malformed YAML are errors (yaml.v3 is strict about both).
func parseManifest(s string) (manifest, error) {
	dec := yaml.NewDecoder(strings.NewReader(s))
	var m manifest
	for {
		var o obj
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		if o != nil {
			m = append(m, o)
		}
	}
}

// kinds counts objects per kind.
func (m manifest) kinds() map[string]int {
	out := map[string]int{}
	for _, o := range m {
		out[str(o["kind"])]++
	}
	return out
}

// one returns the single object of kind named name.
func (m manifest) one(t *testing.T, kind, name string) obj {
	t.Helper()
	var found []obj
	for _, o := range m {
		if str(o["kind"]) == kind && str(dig(o, "metadata", "name")) == name {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s %q, found %d (kinds rendered: %v)", kind, name, len(found), m.kinds())
	}
	return found[0]
}

// dig walks nested maps; nil when a step is missing.
func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// container returns the pod spec's container called name.
func container(t *testing.T, podSpec map[string]any, name string) map[string]any {
	t.Helper()
	for _, c := range list(podSpec["containers"]) {
		if str(dig(c, "name")) == name {
			return mapOf(c)
		}
	}
	t.Fatalf("no container %q in pod spec", name)
	return nil
}

func stringList(v any) []string {
	var out []string
	for _, x := range list(v) {
		out = append(out, str(x))
	}
	return out
}
