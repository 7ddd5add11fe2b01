package policies

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

// ErrConfig is wrapped by NewAuthorizer and Middleware for an incomplete
// or unsafe Config.
var ErrConfig = errors.New("policies: invalid config")

// TokenVerifier verifies a raw access token. *token.Verifier satisfies it;
// it must return claims only for a token whose signature, issuer, expiry
// and audience it checked, and an error wrapping
// token.ErrKeySetUnavailable when it could not tell (answered 503).
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*token.Claims, error)
}

// Config configures an Authorizer (and so Middleware and ForwardAuth).
// Zero values mean the documented defaults.
type Config struct {
	// Verifier checks tokens. If nil, Issuer is required and a verifier is
	// built on Keycloak's JWKS (Issuer + "/protocol/openid-connect/certs").
	Verifier TokenVerifier
	// Issuer is Keycloak's {base}/realms/{realm}; used only when Verifier
	// is nil.
	Issuer string
	// Audiences accepted in aud or azp; used only when Verifier is nil.
	// Empty accepts tokens issued to any client of the realm, which lets a
	// token obtained by one application be replayed against another: set
	// it in production.
	Audiences []string
	// ClockSkew tolerated on exp, nbf and iat; used only when Verifier is
	// nil. Defaults to the verifier's 30 seconds.
	ClockSkew time.Duration
	// StepUpClaim names the claim holding step-up entries; used only when
	// Verifier is nil. Defaults to "stepup".
	StepUpClaim string
	// HTTPClient fetches the JWKS; used only when Verifier is nil.
	HTTPClient *http.Client

	// Source gives the policy per request (swap it at runtime with a
	// FileSource). If nil, Policy is used; if both are nil, the built-in
	// Default policy.
	Source Source
	// Policy is a fixed policy, used when Source is nil.
	Policy *Policy

	// Realm is the realm parameter of every challenge. Defaults to the
	// last segment of Issuer ("/realms/{realm}"), else "api".
	Realm string
	// Logger receives refusals at debug level and verifier outages at warn.
	// Defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock for max_age and step-up expiry. Defaults to time.Now.
	Now func() time.Time
	// Metrics records decisions; nil records nothing.
	Metrics *Metrics
}

// Authorizer makes the decision shared by Middleware and ForwardAuth:
// token, rule, scopes, level. Safe for concurrent use.
type Authorizer struct {
	verifier TokenVerifier
	source   Source
	realm    string
	logger   *slog.Logger
	now      func() time.Time
	metrics  *Metrics
}

// NewAuthorizer checks cfg and builds an Authorizer. ctx bounds the life of
// a JWKS key set it creates (when cfg.Verifier is nil): once ctx is done,
// keys can no longer be fetched and requests needing a fetch get 503.
func NewAuthorizer(ctx context.Context, cfg Config) (*Authorizer, error) {
	a := &Authorizer{verifier: cfg.Verifier, source: cfg.Source, realm: cfg.Realm,
		logger: cfg.Logger, now: cfg.Now, metrics: cfg.Metrics}
	if a.verifier == nil {
		if cfg.Issuer == "" {
			return nil, fmt.Errorf("%w: a Verifier or an Issuer is required", ErrConfig)
		}
		issuer := strings.TrimSuffix(cfg.Issuer, "/")
		keys := token.NewRemoteKeySet(ctx, issuer+"/protocol/openid-connect/certs",
			token.KeySetOptions{HTTPClient: cfg.HTTPClient, Now: cfg.Now})
		v, err := token.NewVerifier(keys, token.Config{
			Issuer: issuer, Audiences: cfg.Audiences, ClockSkew: cfg.ClockSkew,
			Now: cfg.Now, StepUpClaim: cfg.StepUpClaim,
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		a.verifier = v
	}
	if a.source == nil {
		p := cfg.Policy
		if p == nil {
			p = Default()
		}
		a.source = StaticSource(p)
	}
	if a.realm == "" {
		a.realm = "api"
		if u, err := url.Parse(cfg.Issuer); err == nil && cfg.Issuer != "" {
			if i := strings.LastIndex(strings.TrimSuffix(u.Path, "/"), "/realms/"); i >= 0 {
				if r := strings.Trim(u.Path[i+len("/realms/"):], "/"); r != "" && !strings.Contains(r, "/") {
					a.realm = r
				}
			}
		}
	}
	if a.logger == nil {
		a.logger = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// Info is what a request that passed carries in its context
// (FromContext), and what forward auth sends upstream as X-Auth-* headers.
type Info struct {
	// Subject is the token's sub (Keycloak user id).
	Subject string
	// SessionID is the token's sid.
	SessionID string
	// Level is the effective level (acr value) reached for the deciding
	// rule; empty if the rule required none and the token's acr is unknown.
	Level string
	// AMR are the methods of the authentications that counted.
	AMR []string
	// Rule is the deciding rule's label ("default" for the default).
	Rule string
	// Claims are the verified claims; shared, do not modify.
	Claims *token.Claims
}

type infoKey struct{}

// NewContext returns ctx carrying info. Resource servers use it in their
// own tests to fake an authorized request.
func NewContext(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// FromContext returns the Info the middleware stored for an authorized
// request, and false if there is none (the handler is not behind the
// middleware).
func FromContext(ctx context.Context) (*Info, bool) {
	info, ok := ctx.Value(infoKey{}).(*Info)
	return info, ok && info != nil
}

// Result is the outcome of Authorize: either Info (Status 200) or a
// refusal to write with Write.
type Result struct {
	// Status is 200, 401, 403 or 503.
	Status int
	// Outcome is the metric label: allow, insufficient_scope,
	// insufficient_user_authentication, deny, missing_token,
	// invalid_token or unavailable.
	Outcome string
	// Info is set when Status is 200.
	Info *Info
	// Decision is the policy decision, zero if the token did not verify.
	Decision Decision
	// Err is why the token was refused (for logs only: never send it).
	Err error

	challenge *Challenge
	body      errorBody
}

// Write writes a refusal (status, WWW-Authenticate, JSON body). It does
// nothing for an allowed result.
func (r *Result) Write(w http.ResponseWriter) {
	if r.Status == http.StatusOK {
		return
	}
	writeRefusal(w, r.Status, r.challenge, r.body)
}

// Authorize decides one request. authorization is the Authorization header
// value(s) as received; req must carry a normalized path.
//
// Order: no Bearer token = 401 with a bare challenge; a token that does
// not verify = 401 invalid_token (the caller learns nothing of the
// policy); key set unreachable = 503 (never allow); then the policy:
// 403 insufficient_scope, 401 insufficient_user_authentication (RFC 9470)
// or 403 for a default deny.
func (a *Authorizer) Authorize(ctx context.Context, authorization []string, req Request) Result {
	return a.decide(ctx, authorization, req, nil)
}

// decide is Authorize for a request whose path may have failed to
// normalize (pathErr): such a request is denied with 403, but only after
// the token verified, so a caller without a valid token learns nothing.
func (a *Authorizer) decide(ctx context.Context, authorization []string, req Request, pathErr error) Result {
	res := a.authorize(ctx, authorization, req, pathErr)
	a.metrics.decision(ruleMetricLabel(res), res.Outcome)
	if res.Status != http.StatusOK {
		lvl := slog.LevelDebug
		if res.Status == http.StatusServiceUnavailable {
			lvl = slog.LevelWarn
		}
		a.logger.Log(ctx, lvl, "request refused", "outcome", res.Outcome, "status", res.Status,
			"method", req.Method, "host", req.Host, "path", req.Path, "rule", ruleMetricLabel(res), "error", res.Err)
	}
	return res
}

func ruleMetricLabel(r Result) string {
	switch r.Outcome {
	case "missing_token", "invalid_token", "unavailable":
		return "none"
	}
	return r.Decision.RuleLabel()
}

func (a *Authorizer) authorize(ctx context.Context, authorization []string, req Request, pathErr error) Result {
	raw, err := bearerToken(authorization)
	if err != nil {
		if errors.Is(err, errNoToken) {
			return Result{Status: http.StatusUnauthorized, Outcome: "missing_token", Err: err,
				challenge: &Challenge{Realm: a.realm},
				body:      errorBody{Error: ErrorInvalidToken, ErrorDescription: "an access token is required"}}
		}
		return a.invalidToken(err)
	}
	claims, err := a.verifier.Verify(ctx, raw)
	if err != nil {
		if errors.Is(err, token.ErrKeySetUnavailable) {
			return Result{Status: http.StatusServiceUnavailable, Outcome: "unavailable", Err: err,
				body: errorBody{Error: ErrorTemporarilyUnavailable, ErrorDescription: "the token cannot be checked right now"}}
		}
		return a.invalidToken(err)
	}
	if claims == nil {
		return a.invalidToken(errors.New("verifier returned no claims"))
	}
	if pathErr != nil {
		return Result{Status: http.StatusForbidden, Outcome: "deny", Err: pathErr,
			body: errorBody{Error: ErrorAccessDenied, ErrorDescription: "the request path is not accepted"}}
	}
	facts := FactsFromClaims(claims)
	d := a.source.Policy().Decide(req, &facts, a.now())
	res := Result{Decision: d, Outcome: d.Outcome.String()}
	switch d.Outcome {
	case Allow:
		res.Status = http.StatusOK
		res.Info = &Info{Subject: claims.Subject, SessionID: claims.SessionID, Level: d.Level,
			AMR: d.AMR, Rule: d.RuleLabel(), Claims: claims}
	case InsufficientScope:
		res.Status = http.StatusForbidden
		res.challenge = &Challenge{Realm: a.realm, Error: ErrorInsufficientScope,
			ErrorDescription: d.Reason, Scope: d.Scopes}
		res.body = errorBody{Error: ErrorInsufficientScope, ErrorDescription: d.Reason,
			Scope: strings.Join(d.Scopes, " ")}
	case InsufficientAuthentication:
		maxAge := int64(d.MaxAge / time.Second)
		res.Status = http.StatusUnauthorized
		res.challenge = &Challenge{Realm: a.realm, Error: ErrorInsufficientUserAuthentication,
			ErrorDescription: d.Reason, ACRValues: []string{d.RequiredACR}, MaxAge: maxAge}
		res.body = errorBody{Error: ErrorInsufficientUserAuthentication, ErrorDescription: d.Reason,
			ACRValues: d.RequiredACR, MaxAge: maxAge, Factors: d.Factors}
	default:
		res.Status = http.StatusForbidden
		res.body = errorBody{Error: ErrorAccessDenied, ErrorDescription: d.Reason}
	}
	return res
}

func (a *Authorizer) invalidToken(err error) Result {
	const desc = "the access token is invalid or expired"
	return Result{Status: http.StatusUnauthorized, Outcome: "invalid_token", Err: err,
		challenge: &Challenge{Realm: a.realm, Error: ErrorInvalidToken, ErrorDescription: desc},
		body:      errorBody{Error: ErrorInvalidToken, ErrorDescription: desc}}
}

var errNoToken = errors.New("no bearer token")

// bearerToken extracts the token of an Authorization header (RFC 6750
// section 2.1). No header, or another scheme, is errNoToken; several
// headers or a malformed value is an error.
func bearerToken(values []string) (string, error) {
	if len(values) == 0 {
		return "", errNoToken
	}
	if len(values) > 1 {
		return "", errors.New("more than one Authorization header")
	}
	v := strings.TrimSpace(values[0])
	scheme, rest, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if v == "" {
			return "", errNoToken
		}
		if strings.EqualFold(scheme, "Basic") || strings.EqualFold(scheme, "Digest") || strings.EqualFold(scheme, "Negotiate") {
			return "", errNoToken
		}
		return "", errors.New("authorization scheme is not Bearer")
	}
	tok := strings.TrimLeft(rest, " ")
	if tok == "" {
		return "", errors.New("empty bearer token")
	}
	for i := 0; i < len(tok); i++ {
		if !isToken68(tok[i], i == 0) {
			return "", errors.New("bearer token has characters outside token68")
		}
	}
	return tok, nil
}

// isToken68: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" then "="*.
func isToken68(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/':
		return true
	case c == '=':
		return !first
	}
	return false
}
