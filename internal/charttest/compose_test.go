package charttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/policies"
)

func deployDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "docs", "deploy")
}

// composeService is one service of compose.yaml, as parsed (anchors and
// merge keys resolved by yaml.v3).
type composeService = map[string]any

func loadCompose(t *testing.T) map[string]composeService {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(deployDir(t), "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return doc.Services
}

// serviceEnv returns a service's environment whether written as a map or
// as a list of KEY=VALUE.
func serviceEnv(s composeService) map[string]string {
	out := map[string]string{}
	switch env := s["environment"].(type) {
	case map[string]any:
		for k, v := range env {
			out[k] = fmt.Sprint(v)
		}
	case []any:
		for _, kv := range env {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			out[k] = v
		}
	}
	return out
}

// hostPathFor resolves a container path through the service's bind mounts
// to a path on the host, relative to docs/deploy.
func hostPathFor(t *testing.T, s composeService, containerPath string) string {
	t.Helper()
	for _, v := range list(s["volumes"]) {
		parts := strings.Split(str(v), ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue
		}
		src, dst := parts[0], parts[1]
		if containerPath == dst {
			return filepath.Join(deployDir(t), src)
		}
		if rel, err := filepath.Rel(dst, containerPath); err == nil && !strings.HasPrefix(rel, "..") {
			return filepath.Join(deployDir(t), src, rel)
		}
	}
	t.Fatalf("%s is not bind-mounted from docs/deploy (volumes %v)", containerPath, s["volumes"])
	return ""
}

func TestComposeStructure(t *testing.T) {
	t.Parallel()
	svcs := loadCompose(t)
	for _, name := range []string{"keycloak", "postgres", "apply", "stepup-bridge"} {
		if svcs[name] == nil {
			t.Fatalf("compose.yaml has no service %q", name)
		}
	}

	kc := svcs["keycloak"]
	if img := str(kc["image"]); !regexp.MustCompile(`^quay\.io/keycloak/keycloak:26(\.\d+)*$`).MatchString(img) {
		t.Errorf("keycloak image = %q, want quay.io/keycloak/keycloak:26.x", img)
	}
	cmd := stringList(kc["command"])
	if !slices.Contains(cmd, "start-dev") || !slices.Contains(cmd, "--import-realm") {
		t.Errorf("keycloak command = %v, want start-dev --import-realm", cmd)
	}
	kcEnv := serviceEnv(kc)
	for _, k := range []string{"KC_BOOTSTRAP_ADMIN_USERNAME", "KC_BOOTSTRAP_ADMIN_PASSWORD", "KC_HEALTH_ENABLED"} {
		if kcEnv[k] == "" {
			t.Errorf("keycloak environment lacks %s", k)
		}
	}
	realmFile := hostPathFor(t, kc, "/opt/keycloak/data/import/realm-demo.json")
	if _, err := os.Stat(realmFile); err != nil {
		t.Errorf("realm import: %v", err)
	}

	// Every dependency condition names a real service that can satisfy it.
	for name, s := range svcs {
		for dep, spec := range mapOf(s["depends_on"]) {
			target := svcs[dep]
			if target == nil {
				t.Errorf("%s depends on unknown service %s", name, dep)
				continue
			}
			switch cond := str(dig(spec, "condition")); cond {
			case "service_healthy":
				if len(list(dig(target, "healthcheck", "test"))) == 0 {
					t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			case "service_completed_successfully":
				if r := str(target["restart"]); r != "" && r != "no" {
					t.Errorf("%s waits for %s to complete, but %s restarts (%s)", name, dep, dep, r)
				}
			}
		}
	}
	wantDeps := []struct{ svc, dep, cond string }{
		{"apply", "keycloak", "service_healthy"},
		{"apply", "postgres", "service_healthy"},
		{"stepup-bridge", "apply", "service_completed_successfully"},
	}
	for _, w := range wantDeps {
		if got := str(dig(svcs[w.svc], "depends_on", w.dep, "condition")); got != w.cond {
			t.Errorf("%s depends_on %s condition = %q, want %s", w.svc, w.dep, got, w.cond)
		}
	}

	for _, name := range []string{"apply", "stepup-bridge"} {
		s := svcs[name]
		if got := str(dig(s, "build", "dockerfile")); got != "docs/deploy/Dockerfile" {
			t.Errorf("%s build.dockerfile = %q, want docs/deploy/Dockerfile", name, got)
		}
		ctx := filepath.Clean(filepath.Join(deployDir(t), str(dig(s, "build", "context"))))
		if ctx != repoRoot(t) {
			t.Errorf("%s build.context resolves to %s, want the repository root", name, ctx)
		}
		if s["read_only"] != true || !slices.Contains(stringList(s["cap_drop"]), "ALL") {
			t.Errorf("%s: want read_only: true and cap_drop: [ALL]", name)
		}
	}
	if a, b := str(svcs["apply"]["image"]), str(svcs["stepup-bridge"]["image"]); a == "" || a != b {
		t.Errorf("apply image %q and sidecar image %q differ", a, b)
	}
	if c := stringList(svcs["apply"]["command"]); len(c) == 0 || c[0] != "apply" {
		t.Errorf("apply command = %v", c)
	}
	if c := stringList(svcs["stepup-bridge"]["command"]); len(c) == 0 || c[0] != "serve" {
		t.Errorf("sidecar command = %v", c)
	}
}

// TestComposeConfigIsValid loads the compose stack's config.yaml with the
// sidecar's own loader, with the environment compose gives it, and checks it
// against the realm import and the PostgreSQL service.
func TestComposeConfigIsValid(t *testing.T) {
	t.Parallel()
	svcs := loadCompose(t)
	for _, name := range []string{"apply", "stepup-bridge"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := svcs[name]
			args := stringList(s["command"])
			i := slices.Index(args, "--config")
			if i < 0 || i+1 >= len(args) {
				t.Fatalf("%s command %v has no --config", name, args)
			}
			file := hostPathFor(t, s, args[i+1])
			var environ []string
			for k, v := range serviceEnv(s) {
				environ = append(environ, k+"="+v)
			}
			cfg, err := config.Load(config.Source{File: file, Environ: environ})
			if err != nil {
				t.Fatalf("the sidecar refuses the compose config: %v", err)
			}
			if cfg.Listen.Addr != ":8080" {
				t.Errorf("listen.addr = %q, want :8080", cfg.Listen.Addr)
			}
			if cfg.Store.Type != "postgres" {
				t.Errorf("store.type = %q, want postgres", cfg.Store.Type)
			}
			if cfg.Policies.File != "" {
				pf := hostPathFor(t, s, cfg.Policies.File)
				raw, err := os.ReadFile(pf)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := policies.Parse(raw); err != nil {
					t.Errorf("%s: %v", pf, err)
				}
			}
			checkDSN(t, cfg, svcs["postgres"])
			checkRealm(t, cfg, filepath.Join(deployDir(t), "realm-demo.json"))
		})
	}
}

func checkDSN(t *testing.T, cfg config.Config, pg composeService) {
	t.Helper()
	u, err := url.Parse(cfg.Store.Postgres.DSN.Reveal())
	if err != nil {
		t.Fatalf("store.postgres.dsn does not parse")
	}
	env := serviceEnv(pg)
	pass, _ := u.User.Password()
	if u.Hostname() != "postgres" || u.User.Username() != env["POSTGRES_USER"] || pass != env["POSTGRES_PASSWORD"] || strings.TrimPrefix(u.Path, "/") != env["POSTGRES_DB"] {
		t.Errorf("store.postgres.dsn does not match the postgres service (host postgres, user, password and db from its environment)")
	}
}

// realmExport is the part of a Keycloak realm representation the demo uses.
type realmExport struct {
	Realm   string `json:"realm"`
	Enabled bool   `json:"enabled"`
	Roles   struct {
		Realm []struct {
			Name string `json:"name"`
		} `json:"realm"`
	} `json:"roles"`
	Clients []struct {
		ClientID                  string `json:"clientId"`
		Enabled                   bool   `json:"enabled"`
		PublicClient              bool   `json:"publicClient"`
		Secret                    string `json:"secret"`
		DirectAccessGrantsEnabled bool   `json:"directAccessGrantsEnabled"`
		ServiceAccountsEnabled    bool   `json:"serviceAccountsEnabled"`
	} `json:"clients"`
	Users []struct {
		Username               string              `json:"username"`
		Enabled                bool                `json:"enabled"`
		Email                  string              `json:"email"`
		FirstName              string              `json:"firstName"`
		LastName               string              `json:"lastName"`
		ServiceAccountClientID string              `json:"serviceAccountClientId"`
		ClientRoles            map[string][]string `json:"clientRoles"`
		Credentials            []struct {
			Type      string `json:"type"`
			Temporary bool   `json:"temporary"`
		} `json:"credentials"`
	} `json:"users"`
}

// serviceAccountRoles are the realm-management roles the admin client's
// service account needs for serve (view-users, manage-users) and apply
// (the rest); docs/operations.md lists them.
var serviceAccountRoles = []string{"manage-clients", "manage-realm", "manage-users", "view-clients", "view-realm", "view-users"}

func checkRealm(t *testing.T, cfg config.Config, file string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var realm realmExport
	if err := dec.Decode(&realm); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if realm.Realm != cfg.Keycloak.Realm || !realm.Enabled {
		t.Errorf("realm import is %q (enabled %t), config wants realm %q", realm.Realm, realm.Enabled, cfg.Keycloak.Realm)
	}
	clients := map[string]int{}
	for i, c := range realm.Clients {
		clients[c.ClientID] = i
	}
	login, ok := clients[cfg.Keycloak.ClientID]
	if !ok {
		t.Fatalf("realm has no client %q (keycloak.client_id)", cfg.Keycloak.ClientID)
	}
	lc := realm.Clients[login]
	if !lc.Enabled || !lc.DirectAccessGrantsEnabled {
		t.Errorf("client %s needs enabled and directAccessGrantsEnabled for the password grant", lc.ClientID)
	}
	if !lc.PublicClient && lc.Secret != cfg.Keycloak.ClientSecret.Reveal() {
		t.Errorf("client %s secret differs from keycloak.client_secret", lc.ClientID)
	}
	admin, ok := clients[cfg.Keycloak.AdminClientID]
	if !ok {
		t.Fatalf("realm has no client %q (keycloak.admin_client_id)", cfg.Keycloak.AdminClientID)
	}
	ac := realm.Clients[admin]
	if ac.PublicClient || !ac.ServiceAccountsEnabled || ac.Secret != cfg.Keycloak.AdminClientSecret.Reveal() {
		t.Errorf("client %s must be confidential with a service account and the secret of keycloak.admin_client_secret", ac.ClientID)
	}
	for _, c := range cfg.Claims.Clients {
		if _, ok := clients[c]; !ok {
			t.Errorf("claims.clients names %q, which the realm lacks", c)
		}
	}
	var roles []string
	for _, r := range realm.Roles.Realm {
		roles = append(roles, r.Name)
	}
	if !slices.Contains(roles, cfg.Admin.Role) {
		t.Errorf("realm roles %v lack admin.role %q", roles, cfg.Admin.Role)
	}

	foundSA := false
	for _, u := range realm.Users {
		if u.ServiceAccountClientID == "" {
			// Keycloak's default user profile refuses a password grant
			// ("Account is not fully set up") without these.
			if !u.Enabled || u.Email == "" || u.FirstName == "" || u.LastName == "" {
				t.Errorf("user %s needs enabled, email, firstName and lastName", u.Username)
			}
			for _, c := range u.Credentials {
				if c.Temporary {
					t.Errorf("user %s has a temporary password: the password grant would fail", u.Username)
				}
			}
			continue
		}
		if u.ServiceAccountClientID != cfg.Keycloak.AdminClientID {
			continue
		}
		foundSA = true
		got := slices.Clone(u.ClientRoles["realm-management"])
		sort.Strings(got)
		for _, want := range serviceAccountRoles {
			if !slices.Contains(got, want) {
				t.Errorf("service account of %s lacks realm-management role %s (has %v)", ac.ClientID, want, got)
			}
		}
	}
	if !foundSA {
		t.Errorf("realm has no service-account user for %s", ac.ClientID)
	}
}

// composeValidator finds a docker-compose that can check a file offline:
// COMPOSE_BIN, else docker-compose on PATH (Debian package docker-compose).
func composeValidator(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COMPOSE_BIN"); p != "" && isExecutable(p) {
		return p
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return p
	}
	msg := "docker-compose not found (COMPOSE_BIN or PATH); install it with `apt-get install --no-install-recommends docker-compose` to validate compose.yaml"
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func composeConfig(t *testing.T, bin, file string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-f", file, "config", "-q")
	cmd.Dir = filepath.Dir(file)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestComposeValidator runs docker-compose's own schema and consistency
// check over compose.yaml, and over broken copies to show it would notice.
func TestComposeValidator(t *testing.T) {
	t.Parallel()
	bin := composeValidator(t)
	file := filepath.Join(deployDir(t), "compose.yaml")
	if out, err := composeConfig(t, bin, file); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	broken := []struct{ name, from, to string }{
		{"bad condition", "condition: service_completed_successfully", "condition: service_finished"},
		{"unknown dependency", "  postgres:\n    image:", "  postgresql:\n    image:"},
		{"bad boolean", "read_only: true", "read_only: maybe"},
	}
	for _, b := range broken {
		t.Run(b.name, func(t *testing.T) {
			if !bytes.Contains(orig, []byte(b.from)) {
				t.Fatalf("compose.yaml no longer contains %q; update this test", b.from)
			}
			// Same depth below a temporary root, so ../.. still exists.
			dir := filepath.Join(t.TempDir(), "docs", "deploy")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			bad := filepath.Join(dir, "compose.yaml")
			if err := os.WriteFile(bad, bytes.Replace(orig, []byte(b.from), []byte(b.to), 1), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := composeConfig(t, bin, bad); err == nil {
				t.Errorf("docker-compose accepted a broken file (%s):\n%s", b.name, out)
			}
		})
	}
}

// dockerInstruction is one instruction of a Dockerfile, continuation lines
// joined.
type dockerInstruction struct{ cmd, args string }

func parseDockerfile(t *testing.T, file string) []dockerInstruction {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerInstruction
	var cur strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	ins := parseDockerfile(t, filepath.Join(deployDir(t), "Dockerfile"))
	var froms []string
	var build, final []dockerInstruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, in.args)
			continue
		}
		switch len(froms) {
		case 0:
		case 1:
			build = append(build, in)
		default:
			final = append(final, in)
		}
	}
	if len(froms) != 2 {
		t.Fatalf("want a two-stage build, FROM lines: %v", froms)
	}
	if !regexp.MustCompile(`^golang:\S+ AS build$`).MatchString(froms[0]) {
		t.Errorf("builder stage = %q, want golang:<version> AS build", froms[0])
	}
	if !regexp.MustCompile(`^(gcr\.io/distroless/static(-debian\d+)?:nonroot|scratch)$`).MatchString(froms[1]) {
		t.Errorf("final stage = %q, want distroless static nonroot", froms[1])
	}

	var goBuild string
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			goBuild = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "./cmd/stepup-bridge"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("go build %q lacks %s", goBuild, want)
		}
	}
	// The -X target must be a variable that exists.
	m := regexp.MustCompile(`-X (\S+)\.(\w+)=`).FindStringSubmatch(goBuild)
	if m == nil {
		t.Fatalf("go build %q does not set the version with -X", goBuild)
	}
	const module = "github.com/stepup-bridge/stepup-bridge/"
	pkgDir := filepath.Join(repoRoot(t), filepath.FromSlash(strings.TrimPrefix(m[1], module)))
	if !strings.HasPrefix(m[1], module) || !packageDeclaresVar(t, pkgDir, m[2]) {
		t.Errorf("-X %s.%s: no such package-level string variable", m[1], m[2])
	}

	var user, entry, cmd string
	var copied []string
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entry = in.args
		case "CMD":
			cmd = in.args
		case "COPY":
			f := strings.Fields(in.args)
			copied = append(copied, f[len(f)-1])
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("final USER = %q, want a non-root user", user)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entry), &ep); err != nil || len(ep) != 1 || !slices.Contains(copied, ep[0]) {
		t.Errorf("ENTRYPOINT = %s, want the exec form of the copied binary (%v)", entry, copied)
	}
	var c []string
	if err := json.Unmarshal([]byte(cmd), &c); err != nil || !slices.Equal(c, []string{"serve"}) {
		t.Errorf(`CMD = %s, want ["serve"]`, cmd)
	}
}

// packageDeclaresVar reports whether a Go file in dir declares `var name`
// (as -X needs: a package-level string variable).
func packageDeclaresVar(t *testing.T, dir, name string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	re := regexp.MustCompile(`(?m)^var ` + regexp.QuoteMeta(name) + `(\s+string)?\s*=`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if re.Match(raw) {
			return true
		}
	}
	return false
}

// TestOperationsDocListsRoles keeps docs/operations.md in step with the
// roles the demo realm grants and the tests require.
func TestOperationsDocListsRoles(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range serviceAccountRoles {
		if !bytes.Contains(raw, []byte("| `"+role+"` |")) {
			t.Errorf("docs/operations.md has no table row for realm-management role %s", role)
		}
	}
}
