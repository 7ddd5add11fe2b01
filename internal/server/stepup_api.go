package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/stepup"
)

func (s *Server) stepUpRoutes() {
	if s.stepup == nil {
		return
	}
	s.mux.HandleFunc("POST /v1/stepup/challenges", s.limitIP(s.handleCreateChallenge))
	s.mux.HandleFunc("POST /v1/stepup/challenges/{id}/verify", s.limitIP(s.handleVerifyChallenge))
	if s.cfg.Login.Enabled {
		s.mux.HandleFunc("POST /v1/login", s.limitIP(s.handleLogin))
		s.mux.HandleFunc("POST /v1/login/mfa", s.limitIP(s.handleLoginMFA))
		s.mux.HandleFunc("POST /v1/login/mfa/challenge", s.limitIP(s.handleLoginChallenge))
	}
}

// limitIP enforces rate_limits.ip_requests_per_minute on a route, counted in
// the store so the limit holds across replicas. A store failure refuses.
func (s *Server) limitIP(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		limit := int64(s.cfg.RateLimits.IPRequestsPerMinute)
		ip := ClientIP(r.Context())
		if limit > 0 && ip != "" {
			n, reset, err := s.store.IncrementCounter(r.Context(), "ip:"+ip, 1, time.Minute, s.now())
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			if n > limit {
				s.writeError(w, r, &apiError{Status: http.StatusTooManyRequests, Code: "rate_limited",
					Description: "too many requests from this address", RetryAfter: reset.Sub(s.now())})
				return
			}
		}
		next(w, r)
	}
}

type actionJSON struct {
	Method string `json:"method"`
	URI    string `json:"uri"`
}

type createChallengeJSON struct {
	Factor string `json:"factor"`
	// ACRValues is space separated, as in RFC 9470's challenge.
	ACRValues string `json:"acr_values"`
	// MaxAge in seconds, as in the challenge.
	MaxAge int64       `json:"max_age"`
	Action *actionJSON `json:"action"`
}

type challengeJSON struct {
	ChallengeID string            `json:"challenge_id"`
	Factor      string            `json:"factor"`
	ExpiresAt   time.Time         `json:"expires_at"`
	Delivery    *factors.Delivery `json:"delivery,omitempty"`
}

func (s *Server) handleCreateChallenge(w http.ResponseWriter, r *http.Request) {
	raw := bearer(r)
	if raw == "" {
		s.writeError(w, r, errNoToken)
		return
	}
	var body createChallengeJSON
	if err := decodeJSON(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if body.Factor == "" {
		s.writeError(w, r, errBadRequest("factor is required"))
		return
	}
	if body.MaxAge < 0 {
		s.writeError(w, r, errBadRequest("max_age must not be negative"))
		return
	}
	req := stepup.ChallengeRequest{
		Request:   stepup.Request{AccessToken: raw, IP: ClientIP(r.Context())},
		Factor:    body.Factor,
		ACRValues: strings.Fields(body.ACRValues),
		MaxAge:    time.Duration(body.MaxAge) * time.Second,
	}
	if body.Action != nil {
		if len(body.Action.Method) > 16 || len(body.Action.URI) > 2048 {
			s.writeError(w, r, errBadRequest("action is too long"))
			return
		}
		req.Action = stepup.Action{Method: strings.ToUpper(body.Action.Method), URI: body.Action.URI}
	}
	c, err := s.stepup.CreateChallenge(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, challengeJSON{ChallengeID: c.ID, Factor: c.Factor, ExpiresAt: c.ExpiresAt, Delivery: c.Delivery})
}

type verifyJSON struct {
	Code         string `json:"code"`
	RefreshToken string `json:"refresh_token"`
	// TrustDevice asks for a trusted-device credential (devices.enabled).
	TrustDevice bool `json:"trust_device"`
}

type grantJSON struct {
	ACR       string         `json:"acr"`
	AMR       []string       `json:"amr"`
	ExpiresAt time.Time      `json:"expires_at"`
	Tokens    *bridge.Tokens `json:"tokens,omitempty"`
	// Device is the trusted-device credential asked for, shown once.
	Device *deviceGrantJSON `json:"device,omitempty"`
}

func toGrantJSON(g stepup.Grant) grantJSON {
	return grantJSON{ACR: g.ACR, AMR: g.AMR, ExpiresAt: g.ExpiresAt, Tokens: g.Tokens, Device: toDeviceGrant(g.Device)}
}

func (s *Server) handleVerifyChallenge(w http.ResponseWriter, r *http.Request) {
	raw := bearer(r)
	if raw == "" {
		s.writeError(w, r, errNoToken)
		return
	}
	var body verifyJSON
	if err := decodeJSON(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkCode(body.Code); err != nil {
		s.writeError(w, r, err)
		return
	}
	g, err := s.stepup.VerifyChallenge(r.Context(), stepup.VerifyRequest{
		Request:     stepup.Request{AccessToken: raw, IP: ClientIP(r.Context())},
		ChallengeID: r.PathValue("id"), Code: body.Code, RefreshToken: body.RefreshToken,
		TrustDevice: body.TrustDevice, UserAgent: r.UserAgent(),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toGrantJSON(g))
}

// checkCode refuses codes no factor could accept before any work is done.
func checkCode(code string) error {
	if code == "" {
		return errBadRequest("code is required")
	}
	if len(code) > 64 {
		return errBadRequest("code is too long")
	}
	return nil
}

type loginJSON struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// DeviceToken is a trusted-device credential from an earlier MFA or
	// step-up answer; it may replace the second factor, never the password.
	DeviceToken string `json:"device_token"`
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var body loginJSON
	if err := decodeJSON(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if body.Username == "" || body.Password == "" {
		s.writeError(w, r, errBadRequest("username and password are required"))
		return
	}
	if len(body.Username) > 255 || len(body.Password) > 1024 || len(body.DeviceToken) > 256 {
		s.writeError(w, r, errBadRequest("username, password or device_token is too long"))
		return
	}
	res, err := s.stepup.Login(r.Context(), stepup.LoginRequest{Username: body.Username, Password: body.Password,
		IP: ClientIP(r.Context()), UserAgent: r.UserAgent(), DeviceToken: body.DeviceToken})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if res.Pending != nil {
		p := res.Pending
		s.writeError(w, r, &apiError{
			Status: http.StatusUnauthorized, Code: "mfa_required",
			Description: "a second factor is required",
			Challenge:   bearerRealm + `, error="mfa_required"`,
			Extra: map[string]any{
				"mfa_token":  p.MFAToken,
				"factors":    p.Factors,
				"expires_in": int(p.ExpiresAt.Sub(s.now()).Seconds()),
			},
		})
		return
	}
	out := map[string]any{
		"access_token": res.Tokens.AccessToken, "refresh_token": res.Tokens.RefreshToken,
		"token_type": res.Tokens.TokenType, "expires_in": res.Tokens.ExpiresIn,
		"refresh_expires_in": res.Tokens.RefreshExpiresIn, "session_state": res.Tokens.SessionState,
		"scope": res.Tokens.Scope,
	}
	if res.Tokens.IDToken != "" {
		out["id_token"] = res.Tokens.IDToken
	}
	if res.EnrolmentRequired {
		out["enrolment_required"] = true
	}
	if res.TrustedDevice != nil {
		// The second factor was skipped: say so, and what the entry is.
		out["trusted_device"] = map[string]any{"device_id": res.TrustedDevice.ID, "label": res.TrustedDevice.Label,
			"expires_at": res.TrustedDevice.ExpiresAt.UTC()}
		out["acr"], out["amr"] = res.Grant.ACR, res.Grant.AMR
	}
	writeJSON(w, http.StatusOK, out)
}

type loginMFAJSON struct {
	MFAToken string `json:"mfa_token"`
	Factor   string `json:"factor"`
	Code     string `json:"code"`
	// TrustDevice asks for a trusted-device credential (devices.enabled).
	TrustDevice bool `json:"trust_device"`
}

func (s *Server) handleLoginMFA(w http.ResponseWriter, r *http.Request) {
	var body loginMFAJSON
	if err := decodeJSON(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if body.MFAToken == "" || body.Factor == "" {
		s.writeError(w, r, errBadRequest("mfa_token and factor are required"))
		return
	}
	if err := checkCode(body.Code); err != nil {
		s.writeError(w, r, err)
		return
	}
	g, err := s.stepup.LoginMFA(r.Context(), stepup.MFARequest{MFAToken: body.MFAToken, Factor: body.Factor, Code: body.Code,
		IP: ClientIP(r.Context()), TrustDevice: body.TrustDevice, UserAgent: r.UserAgent()})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toGrantJSON(g))
}

type loginChallengeJSON struct {
	MFAToken string `json:"mfa_token"`
	Factor   string `json:"factor"`
}

func (s *Server) handleLoginChallenge(w http.ResponseWriter, r *http.Request) {
	var body loginChallengeJSON
	if err := decodeJSON(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if body.MFAToken == "" || body.Factor == "" {
		s.writeError(w, r, errBadRequest("mfa_token and factor are required"))
		return
	}
	d, err := s.stepup.LoginChallenge(r.Context(), body.MFAToken, body.Factor, ClientIP(r.Context()))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"delivery": d})
}
