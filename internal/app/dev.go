package app

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/internal/keycloaktest"
)

// Dev realm facts (internal/keycloaktest.DevRealm).
const (
	devRealm             = "stepup-dev"
	devLoginClient       = "stepup-login"
	devLoginSecret       = "stepup-login-secret"
	devAdminClient       = "stepup-bridge-admin"
	devAdminClientSecret = "stepup-bridge-admin-secret"
)

// DevOptions configure dev mode.
type DevOptions struct {
	// DataDir holds the SQLite file and the generated dev keys, so a restart
	// keeps enrolled factors. Created with mode 0700.
	DataDir string
	// Source may override any key (a config file, STEPUP_* variables, flags).
	Source config.Source
	// KeycloakAddr is where the built-in Keycloak-compatible server listens.
	// Defaults to 127.0.0.1:0 (a free port).
	KeycloakAddr string
	// Ready, if set, receives the sidecar's and Keycloak's base URLs once
	// both serve (tests use it).
	Ready          func(sidecarURL, keycloakURL string)
	Stdout, Stderr io.Writer
}

// Dev runs the sidecar on loopback beside a built-in Keycloak-compatible
// server holding the dev realm, with SQLite in DataDir, and prints a
// walk-through. It is for trying the sidecar out, never for production:
// keys are generated into DataDir and the realm lives in memory.
func Dev(ctx context.Context, opts DevOptions) error {
	if opts.DataDir == "" {
		opts.DataDir = ".stepup-dev"
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return fmt.Errorf("dev: creating %s: %w", opts.DataDir, err)
	}
	keys, err := devSecrets(filepath.Join(opts.DataDir, "dev-secrets"))
	if err != nil {
		return err
	}
	kcAddr := opts.KeycloakAddr
	if kcAddr == "" {
		kcAddr = "127.0.0.1:0"
	}
	kc, err := keycloaktest.Start(ctx, keycloaktest.Options{Addr: kcAddr})
	if err != nil {
		return fmt.Errorf("dev: starting the built-in Keycloak: %w", err)
	}
	defer kc.Close()
	if err := kc.ImportRealm(keycloaktest.DevRealm()); err != nil {
		return fmt.Errorf("dev: importing the dev realm: %w", err)
	}

	base := config.Default()
	base.DevMode = true
	base.Log = config.Log{Level: "info", Format: "text"}
	base.Keycloak.URL = kc.URL()
	base.Keycloak.Realm = devRealm
	base.Keycloak.ClientID = devLoginClient
	base.Keycloak.ClientSecret = devLoginSecret
	base.Keycloak.AdminClientID = devAdminClient
	base.Keycloak.AdminClientSecret = devAdminClientSecret
	base.Claims.Clients = []string{devLoginClient}
	// Every factor, the delivering ones with the log providers: codes and
	// calling numbers are printed to the log instead of sent.
	base.Factors.Enabled = config.KnownFactors()
	base.Store.Type = "sqlite"
	base.Store.SQLite.Path = filepath.Join(opts.DataDir, "stepup.db")
	base.Secrets.EncryptionKeys = []config.Secret{config.Secret(keys.encryptionKey)}
	base.Secrets.Pepper = config.Secret(keys.pepper)
	src := opts.Source
	src.Base = &base
	cfg, err := config.Load(src)
	if err != nil {
		return err
	}

	fmt.Fprintln(opts.Stdout, "Provisioning the dev realm (what `stepup-bridge apply` does against your Keycloak):")
	if err := Apply(ctx, cfg, opts.Stdout); err != nil {
		return fmt.Errorf("dev: provisioning the dev realm: %w", err)
	}
	log := NewLogger(opts.Stderr, cfg.Log)
	rt, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer rt.Close()
	sidecar := "http://" + rt.Addr()
	printWalkthrough(opts.Stdout, sidecar, kc.URL())
	if opts.Ready != nil {
		opts.Ready(sidecar, kc.URL())
	}
	return rt.Run(ctx)
}

type devKeys struct {
	encryptionKey string
	pepper        string
}

// devSecrets reads the dev keys from path, or creates them (mode 0600) on
// first start.
func devSecrets(path string) (devKeys, error) {
	var k devKeys
	f, err := os.Open(path)
	switch {
	case err == nil:
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			name, val, ok := strings.Cut(sc.Text(), "=")
			if !ok {
				continue
			}
			switch name {
			case "encryption_key":
				k.encryptionKey = val
			case "pepper":
				k.pepper = val
			}
		}
		if err := sc.Err(); err != nil {
			return k, fmt.Errorf("dev: reading %s: %w", path, err)
		}
		if k.encryptionKey == "" || k.pepper == "" {
			return k, fmt.Errorf("dev: %s is incomplete; remove it to generate new dev keys (factors enrolled with the old keys stop working)", path)
		}
		return k, nil
	case errors.Is(err, fs.ErrNotExist):
		enc := make([]byte, 32)
		pep := make([]byte, 32)
		if _, err := rand.Read(enc); err != nil {
			return k, err
		}
		if _, err := rand.Read(pep); err != nil {
			return k, err
		}
		k.encryptionKey = "dev1:" + base64.StdEncoding.EncodeToString(enc)
		k.pepper = base64.StdEncoding.EncodeToString(pep)
		body := "encryption_key=" + k.encryptionKey + "\npepper=" + k.pepper + "\n"
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			return k, fmt.Errorf("dev: writing %s: %w", path, err)
		}
		return k, nil
	default:
		return k, fmt.Errorf("dev: opening %s: %w", path, err)
	}
}

func printWalkthrough(w io.Writer, sidecar, kc string) {
	fmt.Fprintf(w, `
stepup-bridge dev is running (everything on loopback; stop with Ctrl-C).

  sidecar             %[1]s
  Keycloak-compatible %[2]s   realm %[3]s
  users               alice/alice, bob/bob, carol/carol (carol holds the stepup-admin role)
  hosted pages        %[1]s/pages/login   %[1]s/pages/factors   %[1]s/pages/stepup
  codes of SMS, e-mail and flash calls are printed in this log (dev providers)

Walk through a step-up in another shell:

  S=%[1]s; J='Content-Type: application/json'
  field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

  # 1. log in; alice has no second factor yet, so tokens come back at once
  R=$(curl -s -H "$J" -d '{"username":"alice","password":"alice"}' $S/v1/login)
  A=$(echo "$R" | field access_token); RT=$(echo "$R" | field refresh_token)

  # 2. a write is refused until alice steps up (RFC 9470 challenge)
  curl -si -H "Authorization: Bearer $A" -H 'X-Original-Method: POST' -H 'X-Original-URI: /api/profile' $S/v1/authz | grep -i www-authenticate

  # 3. enrol backup codes (the first factor needs no step-up); keep one code
  curl -s -X POST -H "Authorization: Bearer $A" -H "$J" -d '{}' $S/v1/factors/backup_code
  CODE=XXXXX-XXXXX   # one of the codes printed above

  # 4. step up with it; the answer carries refreshed tokens with the step-up claim
  C=$(curl -s -H "Authorization: Bearer $A" -H "$J" -d '{"factor":"backup_code"}' $S/v1/stepup/challenges | field challenge_id)
  R=$(curl -s -H "Authorization: Bearer $A" -H "$J" -d '{"code":"'$CODE'","refresh_token":"'$RT'"}' $S/v1/stepup/challenges/$C/verify)
  A=$(echo "$R" | field access_token)

  # 5. the same write now passes, with acr 2
  curl -si -H "Authorization: Bearer $A" -H 'X-Original-Method: POST' -H 'X-Original-URI: /api/profile' $S/v1/authz | grep -i '^x-auth'

  # 6. next login asks for the second factor before any token is released
  curl -s -H "$J" -d '{"username":"alice","password":"alice"}' $S/v1/login

`, sidecar, kc, devRealm)
}
