package policies

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Facts are the verified token facts a decision needs. The middleware fills
// them from a verified token (FactsFromClaims); a caller with its own
// verifier can fill them directly. Never fill them from an unverified token.
type Facts struct {
	// Subject is the token's sub.
	Subject string
	// SessionID is the token's sid (Keycloak session id). Step-up entries
	// count only for this session; empty means none count.
	SessionID string
	// ACR is Keycloak's own acr claim.
	ACR string
	// AMR is Keycloak's own amr claim, if a mapper adds one (often empty).
	AMR []string
	// AuthTime is Keycloak's auth_time; zero if the token has none, and
	// then Keycloak's own acr cannot satisfy a rule with max_age.
	AuthTime time.Time
	// Scopes are the token's scope values.
	Scopes []string
	// StepUp are the step-up entries the token carries.
	StepUp []StepUpEntry
}

// Outcome is the kind of decision.
type Outcome int

// Outcomes, with the HTTP answer each maps to.
const (
	// Allow: pass the request on (200 for forward auth).
	Allow Outcome = iota
	// InsufficientScope: the rule's scopes are not in the token (403,
	// error="insufficient_scope").
	InsufficientScope
	// InsufficientAuthentication: the level, freshness or factor is not
	// met (401, error="insufficient_user_authentication", RFC 9470).
	InsufficientAuthentication
	// Deny: no rule selected the request and the default is deny, or the
	// request could not be matched safely (403).
	Deny
)

// String returns the outcome's metric label.
func (o Outcome) String() string {
	switch o {
	case Allow:
		return "allow"
	case InsufficientScope:
		return "insufficient_scope"
	case InsufficientAuthentication:
		return "insufficient_user_authentication"
	case Deny:
		return "deny"
	}
	return "unknown"
}

// Decision is the result of evaluating a policy for one request.
type Decision struct {
	Outcome Outcome
	// Rule is the rule that decided, nil for the default.
	Rule *Rule
	// Reason is a short human-readable explanation, safe to send to the
	// client (it names requirements, never token contents).
	Reason string
	// Level is the effective level reached (an acr value), empty if none.
	Level string
	// AMR are the methods of the authentications that counted (sorted,
	// unique), for the request context and the X-Auth-Amr header.
	AMR []string
	// RequiredACR, MaxAge, Factors and Scopes are the rule's requirements,
	// set when Outcome is InsufficientAuthentication or InsufficientScope.
	RequiredACR string
	MaxAge      time.Duration
	Factors     []string
	Scopes      []string
}

// RuleLabel is the deciding rule's label, or "default".
func (d Decision) RuleLabel() string {
	if d.Rule == nil {
		return "default"
	}
	return d.Rule.label
}

// Decide evaluates the policy for one request with verified token facts
// at now. It never fails: what cannot be decided is denied.
//
// Order: the first rule selecting the request (methods, paths, hosts)
// decides; then its scopes (the token must carry one); then its level:
// the effective level is the highest of Keycloak's own acr (counted if
// auth_time is within max_age) and every step-up entry for the token's
// session that has not expired and whose iat is within max_age; with
// factors set, only authentications whose amr names one of them count.
func (p *Policy) Decide(req Request, f *Facts, now time.Time) Decision {
	rule, ok := p.Match(req)
	if !ok {
		return Decision{Outcome: Deny, Rule: rule, Reason: "the request host is unknown"}
	}
	if rule == nil {
		if p.defaultAllow {
			d := Decision{Outcome: Allow}
			d.Level, d.AMR = p.effective(nil, f, now)
			return d
		}
		return Decision{Outcome: Deny, Reason: "no policy rule allows this request"}
	}
	if len(rule.scopes) > 0 && !hasAnyScope(f.Scopes, rule.scopes) {
		return Decision{
			Outcome: InsufficientScope, Rule: rule, Scopes: rule.scopes,
			Reason: "the access token lacks a required scope",
		}
	}
	level, amr := p.effective(rule, f, now)
	if rule.level >= 0 {
		if rank, ok := p.levels[level]; !ok || rank < rule.level {
			return Decision{
				Outcome: InsufficientAuthentication, Rule: rule, Level: level, AMR: amr,
				RequiredACR: rule.acr, MaxAge: rule.maxAge, Factors: rule.factors,
				Reason: describe(rule),
			}
		}
	}
	return Decision{Outcome: Allow, Rule: rule, Level: level, AMR: amr}
}

// effective returns the highest level reached and the amr of the
// authentications that count for rule (nil rule: no max_age, no factors).
func (p *Policy) effective(rule *Rule, f *Facts, now time.Time) (string, []string) {
	var maxAge time.Duration
	var factors []string
	fresh := false
	if rule != nil {
		maxAge, factors, fresh = rule.maxAge, rule.factors, rule.freshFactorOnly
	}
	best, bestLevel := -1, ""
	var amr []string
	consider := func(acr string, methods []string) {
		rank, known := p.levels[acr]
		if !known || (len(factors) > 0 && !intersects(methods, factors)) {
			return
		}
		if fresh && slices.Contains(methods, AMRTrustedDevice) {
			return
		}
		for _, m := range methods {
			if !slices.Contains(amr, m) {
				amr = append(amr, m)
			}
		}
		if rank > best {
			best, bestLevel = rank, acr
		}
	}
	if f.ACR != "" {
		recent := maxAge == 0 || (!f.AuthTime.IsZero() && withinAge(f.AuthTime, now, maxAge))
		if recent {
			consider(f.ACR, f.AMR)
		}
	}
	if f.SessionID != "" {
		nowUnix := now.Unix()
		for i := range f.StepUp {
			e := &f.StepUp[i]
			if e.SID != f.SessionID || nowUnix >= e.EXP {
				continue
			}
			if maxAge > 0 && !withinAge(time.Unix(e.IAT, 0), now, maxAge) {
				continue
			}
			consider(e.ACR, e.AMR)
		}
	}
	slices.Sort(amr)
	return bestLevel, amr
}

// withinAge reports whether at is no older than maxAge at now. An
// authentication time in the future (clock skew) counts as fresh.
func withinAge(at, now time.Time, maxAge time.Duration) bool {
	return now.Sub(at) <= maxAge
}

func describe(r *Rule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "authentication level %s", r.acr)
	if r.maxAge > 0 {
		fmt.Fprintf(&b, " within the last %s", formatSeconds(r.maxAge))
	}
	if len(r.factors) > 0 {
		fmt.Fprintf(&b, " with one of %s", strings.Join(r.factors, ", "))
	}
	if r.freshFactorOnly {
		b.WriteString(" with a freshly proven factor (a trusted device does not count)")
	}
	b.WriteString(" is required")
	return b.String()
}

func formatSeconds(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s%3600 == 0:
		return strconv.FormatInt(s/3600, 10) + "h"
	case s%60 == 0:
		return strconv.FormatInt(s/60, 10) + "m"
	}
	return strconv.FormatInt(s, 10) + "s"
}

func hasAnyScope(have, want []string) bool { return intersects(have, want) }

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func upperASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			return strings.ToUpper(s)
		}
	}
	return s
}
