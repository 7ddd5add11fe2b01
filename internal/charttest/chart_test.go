package charttest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/policies"
)

// renderCase is a values set the chart must lint and render cleanly.
type renderCase struct {
	name string
	args []string
}

func renderCases(t *testing.T) []renderCase {
	t.Helper()
	return []renderCase{
		{name: "defaults"},
		{name: "ha", args: []string{"-f", haValues(t)}},
	}
}

func TestLint(t *testing.T) {
	t.Parallel()
	for _, tc := range renderCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := runHelm(t, append([]string{"lint", "--strict", chartDir(t)}, tc.args...)...)
			if res.err != nil {
				t.Fatalf("helm lint: %v\n%s%s", res.err, res.stdout, res.stderr)
			}
			if !strings.Contains(res.stdout, "0 chart(s) failed") {
				t.Errorf("helm lint output does not report success:\n%s", res.stdout)
			}
		})
	}
}

func TestDefaultRender(t *testing.T) {
	t.Parallel()
	m := template(t)

	got := m.kinds()
	want := map[string]int{"ServiceAccount": 1, "ConfigMap": 1, "Service": 1, "Deployment": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("default rendering has kinds %v, want %v (no PDB/HPA/Job/NetworkPolicy/ServiceMonitor/Secret by default)", got, want)
	}

	dep := m.one(t, "Deployment", fullname)
	if r := dig(dep, "spec", "replicas"); r != 1 {
		t.Errorf("replicas = %v, want 1", r)
	}
	if s := str(dig(dep, "spec", "strategy", "type")); s != "Recreate" {
		t.Errorf("strategy = %q, want Recreate (one pod owns the SQLite file)", s)
	}
	checkServingPod(t, m, dep)

	cfg := renderedConfig(t, m, fullname)
	if got := dig(cfg, "store", "type"); got != "sqlite" {
		t.Errorf("store.type = %v, want sqlite", got)
	}
	// The SQLite file lives on the data volume, not the read-only root.
	dbPath := str(dig(cfg, "store", "sqlite", "path"))
	pod := mapOf(dig(dep, "spec", "template", "spec"))
	ctr := container(t, pod, "stepup-bridge")
	if mount := mountFor(ctr, path.Dir(dbPath)); mount != "data" {
		t.Errorf("store.sqlite.path %s: its directory is on volume %q, want the data volume", dbPath, mount)
	}
	if v := volume(pod, "data"); v == nil || v["emptyDir"] == nil {
		t.Errorf("data volume without persistence = %v, want an emptyDir", v)
	}

	sa := m.one(t, "ServiceAccount", fullname)
	if sa["automountServiceAccountToken"] != false {
		t.Errorf("ServiceAccount automountServiceAccountToken = %v, want false", sa["automountServiceAccountToken"])
	}
	svc := m.one(t, "Service", fullname)
	if !selects(mapOf(dig(svc, "spec", "selector")), podLabels(dep)) {
		t.Errorf("Service selector %v does not select the pods %v", dig(svc, "spec", "selector"), podLabels(dep))
	}
}

func TestSQLitePersistence(t *testing.T) {
	t.Parallel()
	m := template(t, "--set", "store.sqlite.persistence.enabled=true", "--set", "store.sqlite.persistence.size=5Gi")
	pvc := m.one(t, "PersistentVolumeClaim", fullname+"-data")
	if got := str(dig(pvc, "metadata", "annotations", "helm.sh/resource-policy")); got != "keep" {
		t.Errorf("PVC resource-policy = %q, want keep (uninstall must not delete enrolled factors)", got)
	}
	if got := str(dig(pvc, "spec", "resources", "requests", "storage")); got != "5Gi" {
		t.Errorf("PVC size = %q, want 5Gi", got)
	}
	dep := m.one(t, "Deployment", fullname)
	data := volume(mapOf(dig(dep, "spec", "template", "spec")), "data")
	if got := str(dig(data, "persistentVolumeClaim", "claimName")); got != fullname+"-data" {
		t.Errorf("data volume claim = %q, want %s-data", got, fullname)
	}
}

func TestHARender(t *testing.T) {
	t.Parallel()
	m := template(t, "-f", haValues(t))
	dep := m.one(t, "Deployment", fullname)
	checkServingPod(t, m, dep)

	if r, ok := mapOf(dep["spec"])["replicas"]; ok {
		t.Errorf("Deployment sets replicas=%v although the HPA owns the count", r)
	}
	if s := str(dig(dep, "spec", "strategy", "type")); s != "RollingUpdate" {
		t.Errorf("strategy = %q, want RollingUpdate", s)
	}
	if u := dig(dep, "spec", "strategy", "rollingUpdate", "maxUnavailable"); u != 0 {
		t.Errorf("rollingUpdate.maxUnavailable = %v, want 0", u)
	}
	labels := podLabels(dep)

	pdb := m.one(t, "PodDisruptionBudget", fullname)
	if !reflect.DeepEqual(dig(pdb, "spec", "selector", "matchLabels"), dig(dep, "spec", "selector", "matchLabels")) {
		t.Errorf("PDB selector %v differs from the Deployment's %v", dig(pdb, "spec", "selector", "matchLabels"), dig(dep, "spec", "selector", "matchLabels"))
	}
	if got := dig(pdb, "spec", "maxUnavailable"); got != 1 {
		t.Errorf("PDB maxUnavailable = %v, want 1", got)
	}

	hpa := m.one(t, "HorizontalPodAutoscaler", fullname)
	if str(dig(hpa, "spec", "scaleTargetRef", "kind")) != "Deployment" || str(dig(hpa, "spec", "scaleTargetRef", "name")) != fullname {
		t.Errorf("HPA targets %v, want Deployment %s", dig(hpa, "spec", "scaleTargetRef"), fullname)
	}
	if lo, hi := dig(hpa, "spec", "minReplicas"), dig(hpa, "spec", "maxReplicas"); lo != 3 || hi != 10 {
		t.Errorf("HPA min/max = %v/%v, want 3/10", lo, hi)
	}

	sm := m.one(t, "ServiceMonitor", fullname)
	ep := mapOf(list(dig(sm, "spec", "endpoints"))[0])
	if ep["path"] != "/metrics" || ep["port"] != "http" {
		t.Errorf("ServiceMonitor endpoint = %v, want port http path /metrics", ep)
	}
	svc := m.one(t, "Service", fullname)
	if !selects(mapOf(dig(sm, "spec", "selector", "matchLabels")), mapOf(dig(svc, "metadata", "labels"))) {
		t.Errorf("ServiceMonitor selector does not match the Service's labels")
	}

	checkNetworkPolicy(t, m.one(t, "NetworkPolicy", fullname), labels)

	cfg := renderedConfig(t, m, fullname)
	if got := dig(cfg, "store", "type"); got != "postgres" {
		t.Errorf("store.type = %v, want postgres", got)
	}
	pod := mapOf(dig(dep, "spec", "template", "spec"))
	if v := volume(pod, "data"); v != nil {
		t.Errorf("postgres store still mounts a data volume: %v", v)
	}
	if _, err := policies.Parse([]byte(str(dig(m.one(t, "ConfigMap", fullname), "data", "policies.yaml")))); err != nil {
		t.Errorf("rendered policies.yaml does not parse: %v", err)
	}

	checkProvisioningJob(t, m)
}

// TestHAWithoutAutoscaling: a fixed replica count keeps replicas and the PDB.
func TestHAWithoutAutoscaling(t *testing.T) {
	t.Parallel()
	m := template(t, "-f", haValues(t), "--set", "autoscaling.enabled=false")
	dep := m.one(t, "Deployment", fullname)
	if r := dig(dep, "spec", "replicas"); r != 3 {
		t.Errorf("replicas = %v, want 3", r)
	}
	if m.kinds()["HorizontalPodAutoscaler"] != 0 {
		t.Error("HPA rendered with autoscaling.enabled=false")
	}
	m.one(t, "PodDisruptionBudget", fullname)
}

// fileSource is where a mounted file comes from.
type fileSource struct{ Kind, Name, Key string }

func TestSecretsAndConfigFilesAreMounted(t *testing.T) {
	t.Parallel()
	defaultSecrets := map[string]fileSource{
		"keycloak.admin_client_secret_file": {"Secret", "stepup-bridge-secrets", "admin-client-secret"},
		"secrets.encryption_keys_file":      {"Secret", "stepup-bridge-secrets", "encryption-keys"},
		"secrets.pepper_file":               {"Secret", "stepup-bridge-secrets", "pepper"},
	}
	ha := map[string]fileSource{
		"keycloak.client_secret_file":     {"Secret", "stepup-bridge-secrets", "client-secret"},
		"store.postgres.dsn_file":         {"Secret", "stepup-bridge-db", "dsn"},
		"keycloak.ca_file":                {"ConfigMap", "corporate-ca", "ca.crt"},
		"factors.sms.webhook.secret_file": {"Secret", "sms-gateway", "webhook-secret"},
		"policies.file":                   {"ConfigMap", fullname, "policies.yaml"},
	}
	for k, v := range defaultSecrets {
		ha[k] = v
	}
	cases := []struct {
		name string
		args []string
		want map[string]fileSource
	}{
		{"defaults", nil, defaultSecrets},
		{"ha", []string{"-f", haValues(t)}, ha},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := template(t, tc.args...)
			dep := m.one(t, "Deployment", fullname)
			pod := mapOf(dig(dep, "spec", "template", "spec"))
			ctr := container(t, pod, "stepup-bridge")
			mounted := mountedFiles(t, m, pod, ctr)
			cfg := renderedConfig(t, m, fullname)

			got := map[string]fileSource{}
			for key, p := range fileKeys(cfg) {
				src, ok := mounted[p]
				if !ok {
					t.Errorf("%s = %s, but no volume provides that file", key, p)
					continue
				}
				got[key] = src
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("file keys resolve to\n%v\nwant\n%v", got, tc.want)
			}
			if cfgPath := configArg(t, ctr); mounted[cfgPath] != (fileSource{"ConfigMap", fullname, "config.yaml"}) {
				t.Errorf("--config %s is not the chart's ConfigMap key config.yaml (got %v)", cfgPath, mounted[cfgPath])
			}
			loadRenderedConfig(t, cfg)
		})
	}
}

func TestChecksumAnnotation(t *testing.T) {
	t.Parallel()
	checksum := func(t *testing.T, args ...string) string {
		t.Helper()
		m := template(t, args...)
		dep := m.one(t, "Deployment", fullname)
		sum := str(dig(dep, "spec", "template", "metadata", "annotations", "checksum/config"))
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sum) {
			t.Fatalf("checksum/config = %q, want a sha256 hex digest", sum)
		}
		// It is the digest of exactly the config.yaml the pods read.
		raw := str(dig(m.one(t, "ConfigMap", fullname), "data", "config.yaml"))
		h := sha256.Sum256([]byte(strings.TrimSuffix(raw, "\n")))
		if hex.EncodeToString(h[:]) != sum {
			t.Errorf("checksum/config %s is not the sha256 of the ConfigMap's config.yaml", sum)
		}
		return sum
	}
	ha := haValues(t)
	base := checksum(t, "-f", ha)
	cases := []struct {
		name    string
		args    []string
		changes bool
	}{
		{"same values", nil, false},
		{"log level", []string{"--set", "config.log.level=debug"}, true},
		{"keycloak realm", []string{"--set", "keycloak.realm=other"}, true},
		{"store switch", []string{"--set", "store.type=sqlite", "--set", "replicaCount=1", "--set", "autoscaling.enabled=false"}, true},
		// Policies are hot-reloaded from the mounted directory: no rollout.
		{"policy edit", []string{"--set", "policies.default=allow"}, false},
		// Secret values are read at start; a different Secret name is not config.
		{"replica count", []string{"--set", "autoscaling.enabled=false", "--set", "replicaCount=4"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := checksum(t, append([]string{"-f", ha}, tc.args...)...)
			if (got != base) != tc.changes {
				t.Errorf("checksum changed = %t, want %t", got != base, tc.changes)
			}
		})
	}
}

func TestSQLiteRefusesSeveralReplicas(t *testing.T) {
	t.Parallel()
	const msg = "store.type sqlite supports exactly one replica"
	cases := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{"two replicas", []string{"--set", "replicaCount=2"}, true},
		{"autoscaling", []string{"--set", "autoscaling.enabled=true"}, true},
		{"persistent, five replicas", []string{"--set", "replicaCount=5", "--set", "store.sqlite.persistence.enabled=true"}, true},
		{"one replica", []string{"--set", "replicaCount=1"}, false},
		{"postgres, two replicas", []string{"--set", "replicaCount=2", "--set", "store.type=postgres"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := templateResult(t, tc.args...)
			if !tc.wantErr {
				if res.err != nil {
					t.Fatalf("helm template refused: %v\n%s", res.err, res.stderr)
				}
				return
			}
			if res.err == nil {
				t.Fatal("helm template accepted SQLite with more than one replica")
			}
			if !strings.Contains(res.stderr, msg) || !strings.Contains(res.stderr, "store.type=postgres") {
				t.Errorf("error does not explain the refusal and the fix:\n%s", res.stderr)
			}
		})
	}
}

func TestSchemaRejectsBadValues(t *testing.T) {
	t.Parallel()
	const schemaErr = "values don't meet the specifications of the schema"
	cases := []struct {
		name  string
		args  []string
		where string // the JSON pointer helm reports
	}{
		{"store type mysql", []string{"--set", "store.type=mysql"}, "/store/type"},
		{"replicaCount string", []string{"--set-string", "replicaCount=two"}, "/replicaCount"},
		{"replicaCount zero", []string{"--set", "replicaCount=0"}, "/replicaCount"},
		{"root uid", []string{"--set", "runAsUser=0"}, "/runAsUser"},
		{"pepper without secret", []string{"--set", "secrets.pepper.existingSecret="}, "/secrets/pepper/existingSecret"},
		{"encryption keys without key", []string{"--set", "secrets.encryptionKeys.key="}, "/secrets/encryptionKeys/key"},
		{"admin secret missing", []string{"--set", "keycloak.adminClientSecret.existingSecret="}, "/keycloak/adminClientSecret/existingSecret"},
		{"postgres without dsn secret", []string{"--set", "store.type=postgres", "--set", "store.postgres.dsn.existingSecret="}, "/store/postgres/dsn/existingSecret"},
		{"keycloak url with realm", []string{"--set", "keycloak.url=https://sso.example.com/realms/x"}, "/keycloak/url"},
		{"keycloak url not http", []string{"--set", "keycloak.url=sso.example.com"}, "/keycloak/url"},
		{"unknown top-level key", []string{"--set", "replicas=3"}, "replicas"},
		{"pull policy", []string{"--set", "image.pullPolicy=Sometimes"}, "/image/pullPolicy"},
		{"hpa min zero", []string{"--set", "autoscaling.minReplicas=0"}, "/autoscaling/minReplicas"},
		{"extra secret file key", []string{"--set", "extraSecretFiles[0].existingSecret=x", "--set", "extraSecretFiles[0].key=y", "--set", "extraSecretFiles[0].configKey=factors.sms.webhook.secret"}, "/extraSecretFiles/0/configKey"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := templateResult(t, tc.args...)
			if res.err == nil {
				t.Fatalf("helm template accepted %v", tc.args)
			}
			if !strings.Contains(res.stderr, schemaErr) || !strings.Contains(res.stderr, tc.where) {
				t.Errorf("want a schema error at %s, got:\n%s", tc.where, res.stderr)
			}
		})
	}
}

// TestSchemaRefusesSecretValues: every secret key of config.Config (a field
// of type config.Secret) is refused as a chart value, both under config: and
// as an extraEnv variable, so a secret cannot end up in a ConfigMap or a
// Deployment. New secret keys in config.go fail here until the schema
// refuses them too.
func TestSchemaRefusesSecretValues(t *testing.T) {
	t.Parallel()
	keys := secretKeys()
	if len(keys) < 5 {
		t.Fatalf("found only %d secret keys in config.Config: %v", len(keys), keys)
	}
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			res := templateResult(t, "--set", "config."+key+"=hunter2-hunter2-hunter2")
			if res.err == nil || !strings.Contains(res.stderr, "/config/"+strings.ReplaceAll(key, ".", "/")) {
				t.Errorf("config.%s as a value was not refused by the schema: %v\n%s", key, res.err, res.stderr)
			}
			env := config.EnvName(key)
			res = templateResult(t, "--set", "extraEnv[0].name="+env, "--set", "extraEnv[0].value=hunter2")
			if res.err == nil || !strings.Contains(res.stderr, "/extraEnv/0/name") {
				t.Errorf("extraEnv %s was not refused by the schema: %v\n%s", env, res.err, res.stderr)
			}
		})
	}
}

func TestNoSecretValueRendered(t *testing.T) {
	t.Parallel()
	for _, tc := range renderCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := template(t, tc.args...)
			if n := m.kinds()["Secret"]; n != 0 {
				t.Errorf("chart renders %d Secret objects; secrets must be references to existing ones", n)
			}
			for _, name := range []string{fullname, fullname + "-provisioning"} {
				var cm obj
				for _, o := range m {
					if str(o["kind"]) == "ConfigMap" && str(dig(o, "metadata", "name")) == name {
						cm = o
					}
				}
				if cm == nil {
					continue
				}
				cfg := parseConfig(t, str(dig(cm, "data", "config.yaml")))
				for _, key := range secretKeys() {
					if v := dig(cfg, strings.Split(key, ".")...); v != nil {
						t.Errorf("ConfigMap %s carries the secret key %s = %v", name, key, v)
					}
				}
			}
			secretEnv := map[string]bool{}
			for _, key := range secretKeys() {
				secretEnv[config.EnvName(key)] = true
			}
			for _, o := range m {
				walkContainers(o, func(c map[string]any) {
					for _, e := range list(c["env"]) {
						if secretEnv[str(dig(e, "name"))] {
							t.Errorf("%s %s sets secret variable %s", o["kind"], dig(o, "metadata", "name"), dig(e, "name"))
						}
					}
					if c["envFrom"] != nil {
						t.Errorf("%s %s uses envFrom; secrets are files", o["kind"], dig(o, "metadata", "name"))
					}
				})
			}
		})
	}
}

// checkServingPod checks what every rendering's Deployment must have.
func checkServingPod(t *testing.T, m manifest, dep obj) {
	t.Helper()
	pod := mapOf(dig(dep, "spec", "template", "spec"))
	checkHardening(t, "Deployment", pod)
	ctr := container(t, pod, "stepup-bridge")

	args := stringList(ctr["args"])
	if len(args) == 0 || args[0] != "serve" {
		t.Errorf("container args = %v, want serve --config ...", args)
	}
	ports := list(ctr["ports"])
	if len(ports) != 1 || dig(ports[0], "name") != "http" || dig(ports[0], "containerPort") != 8080 {
		t.Errorf("ports = %v, want one named http on 8080", ports)
	}
	cfg := renderedConfig(t, m, fullname)
	if got := str(dig(cfg, "listen", "addr")); got != ":8080" {
		t.Errorf("listen.addr = %q, want :8080 (the container port, all interfaces)", got)
	}

	probes := []struct{ name, path string }{
		{"livenessProbe", "/healthz"},
		{"readinessProbe", "/readyz"},
		{"startupProbe", "/healthz"},
	}
	for _, p := range probes {
		if got := str(dig(ctr, p.name, "httpGet", "path")); got != p.path {
			t.Errorf("%s path = %q, want %s", p.name, got, p.path)
		}
		if got := dig(ctr, p.name, "httpGet", "port"); got != "http" {
			t.Errorf("%s port = %v, want http", p.name, got)
		}
	}

	for _, kind := range []string{"requests", "limits"} {
		for _, res := range []string{"cpu", "memory"} {
			if dig(ctr, "resources", kind, res) == nil {
				t.Errorf("resources.%s.%s is not set", kind, res)
			}
		}
	}

	if mountFor(ctr, "/tmp") != "tmp" || dig(volume(pod, "tmp"), "emptyDir") == nil {
		t.Error("/tmp is not an emptyDir (the root filesystem is read-only)")
	}
	for _, vm := range list(ctr["volumeMounts"]) {
		if sp := str(dig(vm, "subPath")); sp != "" {
			t.Errorf("volume mount %v uses subPath: ConfigMap updates would not reach the pod", vm)
		}
	}
	if ann := str(dig(dep, "spec", "template", "metadata", "annotations", "checksum/config")); ann == "" {
		t.Error("pod template has no checksum/config annotation")
	}
	if gp, ok := pod["terminationGracePeriodSeconds"].(int); !ok || gp <= 20 {
		t.Errorf("terminationGracePeriodSeconds = %v, want more than listen.shutdown_timeout (20s)", pod["terminationGracePeriodSeconds"])
	}
}

// checkHardening checks the pod and container security settings.
func checkHardening(t *testing.T, what string, pod map[string]any) {
	t.Helper()
	if pod["automountServiceAccountToken"] != false {
		t.Errorf("%s: automountServiceAccountToken = %v, want false", what, pod["automountServiceAccountToken"])
	}
	psc := mapOf(pod["securityContext"])
	if psc["runAsNonRoot"] != true {
		t.Errorf("%s: pod runAsNonRoot = %v, want true", what, psc["runAsNonRoot"])
	}
	if uid, ok := psc["runAsUser"].(int); !ok || uid <= 0 {
		t.Errorf("%s: pod runAsUser = %v, want a fixed non-root uid", what, psc["runAsUser"])
	}
	if got := dig(psc, "seccompProfile", "type"); got != "RuntimeDefault" {
		t.Errorf("%s: pod seccompProfile = %v, want RuntimeDefault", what, got)
	}
	if len(list(pod["containers"])) == 0 {
		t.Fatalf("%s: no containers", what)
	}
	for _, c := range append(list(pod["containers"]), list(pod["initContainers"])...) {
		sc := mapOf(dig(c, "securityContext"))
		name := str(dig(c, "name"))
		checks := []struct {
			field string
			got   any
			want  any
		}{
			{"readOnlyRootFilesystem", sc["readOnlyRootFilesystem"], true},
			{"allowPrivilegeEscalation", sc["allowPrivilegeEscalation"], false},
			{"runAsNonRoot", sc["runAsNonRoot"], true},
			{"privileged", sc["privileged"], false},
			{"capabilities.drop", stringList(dig(sc, "capabilities", "drop")), []string{"ALL"}},
			{"seccompProfile.type", dig(sc, "seccompProfile", "type"), "RuntimeDefault"},
		}
		for _, ck := range checks {
			if !reflect.DeepEqual(ck.got, ck.want) {
				t.Errorf("%s container %s: securityContext.%s = %v, want %v", what, name, ck.field, ck.got, ck.want)
			}
		}
		if uid, ok := sc["runAsUser"].(int); !ok || uid <= 0 {
			t.Errorf("%s container %s: runAsUser = %v, want a fixed non-root uid", what, name, sc["runAsUser"])
		}
		if dig(c, "securityContext", "capabilities", "add") != nil {
			t.Errorf("%s container %s adds capabilities", what, name)
		}
	}
}

func checkNetworkPolicy(t *testing.T, np obj, podLabels map[string]any) {
	t.Helper()
	if !selects(mapOf(dig(np, "spec", "podSelector", "matchLabels")), podLabels) {
		t.Errorf("NetworkPolicy podSelector %v does not select the pods %v", dig(np, "spec", "podSelector"), podLabels)
	}
	types := stringList(dig(np, "spec", "policyTypes"))
	sort.Strings(types)
	if !reflect.DeepEqual(types, []string{"Egress", "Ingress"}) {
		t.Errorf("policyTypes = %v, want Ingress and Egress", types)
	}
	ingress := list(dig(np, "spec", "ingress"))
	if len(ingress) == 0 || len(list(dig(ingress[0], "from"))) == 0 {
		t.Errorf("ingress = %v, want rules limited to the proxy/ingress namespace", ingress)
	}
	egressPorts := map[string]bool{}
	for _, rule := range list(dig(np, "spec", "egress")) {
		for _, p := range list(dig(rule, "ports")) {
			proto := str(dig(p, "protocol"))
			if proto == "" {
				proto = "TCP"
			}
			egressPorts[proto+"/"+toString(dig(p, "port"))] = true
		}
		if len(list(dig(rule, "to"))) == 0 {
			t.Errorf("egress rule %v allows every destination", rule)
		}
	}
	for _, want := range []string{"UDP/53", "TCP/53", "TCP/8080", "TCP/5432"} {
		if !egressPorts[want] {
			t.Errorf("egress lacks %s (DNS, Keycloak, PostgreSQL); has %v", want, egressPorts)
		}
	}
}

func checkProvisioningJob(t *testing.T, m manifest) {
	t.Helper()
	job := m.one(t, "Job", fullname+"-apply")
	hooks := strings.Split(str(dig(job, "metadata", "annotations", "helm.sh/hook")), ",")
	if !slices.Contains(hooks, "pre-install") || !slices.Contains(hooks, "pre-upgrade") {
		t.Errorf("Job hooks = %v, want pre-install and pre-upgrade", hooks)
	}
	pod := mapOf(dig(job, "spec", "template", "spec"))
	checkHardening(t, "Job", pod)
	if pod["restartPolicy"] != "Never" {
		t.Errorf("Job restartPolicy = %v, want Never", pod["restartPolicy"])
	}
	if sa := str(pod["serviceAccountName"]); sa != "" && sa != "default" {
		t.Errorf("Job uses ServiceAccount %q, which does not exist yet when a pre-install hook runs", sa)
	}
	ctr := container(t, pod, "apply")
	if args := stringList(ctr["args"]); len(args) == 0 || args[0] != "apply" {
		t.Errorf("Job args = %v, want apply --config ...", args)
	}
	// The hook's config must exist before the Job (hooks run before the
	// release's objects) and be the same config the pods read.
	hookCM := m.one(t, "ConfigMap", fullname+"-provisioning")
	if str(dig(hookCM, "metadata", "annotations", "helm.sh/hook")) != str(dig(job, "metadata", "annotations", "helm.sh/hook")) {
		t.Error("the Job's ConfigMap is not a hook of the same events")
	}
	if w := weight(hookCM); w >= weight(job) {
		t.Errorf("hook ConfigMap weight %d is not below the Job's %d", w, weight(job))
	}
	if dig(hookCM, "data", "config.yaml") != dig(m.one(t, "ConfigMap", fullname), "data", "config.yaml") {
		t.Error("the provisioning Job's config.yaml differs from the pods' config.yaml")
	}
	mounted := mountedFiles(t, m, pod, ctr)
	if src := mounted[configArg(t, ctr)]; src != (fileSource{"ConfigMap", fullname + "-provisioning", "config.yaml"}) {
		t.Errorf("Job --config resolves to %v, want the hook ConfigMap", src)
	}
	cfg := renderedConfig(t, m, fullname)
	for key, p := range fileKeys(cfg) {
		if key == "policies.file" {
			continue // apply does not evaluate policies
		}
		if _, ok := mounted[p]; !ok {
			t.Errorf("Job: %s = %s is not mounted", key, p)
		}
	}
}

func weight(o obj) int {
	var w int
	if err := yaml.Unmarshal([]byte(str(dig(o, "metadata", "annotations", "helm.sh/hook-weight"))), &w); err != nil {
		return 0
	}
	return w
}

// renderedConfig parses config.yaml of the ConfigMap called name.
func renderedConfig(t *testing.T, m manifest, name string) map[string]any {
	t.Helper()
	return parseConfig(t, str(dig(m.one(t, "ConfigMap", name), "data", "config.yaml")))
}

func parseConfig(t *testing.T, raw string) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("config.yaml does not parse: %v\n%s", err, raw)
	}
	if len(cfg) == 0 {
		t.Fatal("config.yaml is empty")
	}
	return cfg
}

// fileKeys returns every key of cfg that names a file the sidecar reads.
func fileKeys(cfg map[string]any) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			if sub, ok := v.(map[string]any); ok {
				walk(key, sub)
				continue
			}
			if strings.HasSuffix(k, "_file") || key == "policies.file" {
				out[key] = str(v)
			}
		}
	}
	walk("", cfg)
	return out
}

// loadRenderedConfig runs the sidecar's own loader over a rendered
// config.yaml, with every mounted file replaced by a valid stand-in. Unknown
// keys, bad values and missing secrets fail here as they would in the pod.
func loadRenderedConfig(t *testing.T, cfg map[string]any) {
	t.Helper()
	dir := t.TempDir()
	key32 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	contents := map[string]string{
		"secrets.encryption_keys_file": "k2:" + key32 + "\nk1:" + key32 + "\n",
		"secrets.pepper_file":          key32 + "\n",
		"policies.file":                "levels: [\"1\", \"2\"]\nrules: []\ndefault: deny\n",
	}
	n := 0
	for key := range fileKeys(cfg) {
		n++
		p := filepath.Join(dir, strings.ReplaceAll(key, ".", "_"))
		body, ok := contents[key]
		if !ok {
			body = "stand-in-secret-value-0123456789\n"
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		setPath(cfg, strings.Split(key, "."), p)
	}
	if n == 0 {
		t.Fatal("rendered config has no *_file keys")
	}
	if sp := dig(cfg, "store", "sqlite", "path"); sp != nil {
		setPath(cfg, []string{"store", "sqlite", "path"}, filepath.Join(dir, "stepup-bridge.db"))
	}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(config.Source{File: file, Environ: []string{}}); err != nil {
		t.Errorf("the sidecar refuses the rendered config: %v\n%s", err, raw)
	}
}

func setPath(m map[string]any, path []string, v any) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// secretKeys lists the dotted keys of config.Config whose type is
// config.Secret or a list of them.
func secretKeys() []string {
	secretT := reflect.TypeOf(config.Secret(""))
	var out []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("mapstructure")
			if tag == "" || tag == "-" {
				continue
			}
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			switch {
			case f.Type == secretT || (f.Type.Kind() == reflect.Slice && f.Type.Elem() == secretT):
				out = append(out, key)
			case f.Type.Kind() == reflect.Struct:
				walk(key, f.Type)
			}
		}
	}
	walk("", reflect.TypeOf(config.Config{}))
	sort.Strings(out)
	return out
}

// mountedFiles maps every file path a container sees through ConfigMap,
// Secret and projected volumes to where it comes from.
func mountedFiles(t *testing.T, m manifest, pod, ctr map[string]any) map[string]fileSource {
	t.Helper()
	out := map[string]fileSource{}
	addItems := func(dir, kind, name string, items []any) {
		for _, it := range items {
			out[path.Join(dir, str(dig(it, "path")))] = fileSource{kind, name, str(dig(it, "key"))}
		}
	}
	for _, vm := range list(ctr["volumeMounts"]) {
		dir := str(dig(vm, "mountPath"))
		v := volume(pod, str(dig(vm, "name")))
		if v == nil {
			t.Errorf("volume mount %v has no volume", vm)
			continue
		}
		switch {
		case v["configMap"] != nil:
			name := str(dig(v, "configMap", "name"))
			if items := list(dig(v, "configMap", "items")); items != nil {
				addItems(dir, "ConfigMap", name, items)
				continue
			}
			for key := range mapOf(dig(m.one(t, "ConfigMap", name), "data")) {
				out[path.Join(dir, key)] = fileSource{"ConfigMap", name, key}
			}
		case v["secret"] != nil:
			addItems(dir, "Secret", str(dig(v, "secret", "secretName")), list(dig(v, "secret", "items")))
		case v["projected"] != nil:
			for _, src := range list(dig(v, "projected", "sources")) {
				if s := dig(src, "secret"); s != nil {
					addItems(dir, "Secret", str(dig(s, "name")), list(dig(s, "items")))
				}
				if c := dig(src, "configMap"); c != nil {
					addItems(dir, "ConfigMap", str(dig(c, "name")), list(dig(c, "items")))
				}
			}
			if mode, ok := dig(v, "projected", "defaultMode").(int); !ok || mode&0o007 != 0 {
				t.Errorf("projected volume %s defaultMode = %v, want no access for others", dig(vm, "name"), dig(v, "projected", "defaultMode"))
			}
		}
	}
	return out
}

func volume(pod map[string]any, name string) map[string]any {
	for _, v := range list(pod["volumes"]) {
		if str(dig(v, "name")) == name {
			return mapOf(v)
		}
	}
	return nil
}

// mountFor returns the volume mounted at exactly dir.
func mountFor(ctr map[string]any, dir string) string {
	for _, vm := range list(ctr["volumeMounts"]) {
		if path.Clean(str(dig(vm, "mountPath"))) == path.Clean(dir) {
			return str(dig(vm, "name"))
		}
	}
	return ""
}

func configArg(t *testing.T, ctr map[string]any) string {
	t.Helper()
	args := stringList(ctr["args"])
	i := slices.Index(args, "--config")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("container args %v have no --config", args)
	}
	return args[i+1]
}

func podLabels(dep obj) map[string]any {
	return mapOf(dig(dep, "spec", "template", "metadata", "labels"))
}

// selects reports whether a matchLabels selector (non-empty) matches labels.
func selects(selector, labels map[string]any) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// walkContainers calls fn for every container of a workload object.
func walkContainers(o obj, fn func(map[string]any)) {
	pod := mapOf(dig(o, "spec", "template", "spec"))
	for _, c := range append(list(pod["containers"]), list(pod["initContainers"])...) {
		fn(mapOf(c))
	}
}

func toString(v any) string {
	if x, ok := v.(int); ok {
		return strconv.Itoa(x)
	}
	return fmt.Sprint(v)
}
