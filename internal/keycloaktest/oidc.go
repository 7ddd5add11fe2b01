package keycloaktest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	oidc := "/realms/{realm}/protocol/openid-connect/"
	mux.HandleFunc("GET /realms/{realm}", s.withRealm(s.handleRealmInfo))
	mux.HandleFunc("GET /realms/{realm}/.well-known/openid-configuration", s.withRealm(s.handleDiscovery))
	mux.HandleFunc("GET "+oidc+"certs", s.withRealm(s.handleCerts))
	mux.HandleFunc("POST "+oidc+"token", s.withRealm(s.handleToken))
	mux.HandleFunc("POST "+oidc+"token/introspect", s.withRealm(s.handleIntrospect))
	mux.HandleFunc("GET "+oidc+"userinfo", s.withRealm(s.handleUserinfo))
	mux.HandleFunc("POST "+oidc+"userinfo", s.withRealm(s.handleUserinfo))
	mux.HandleFunc("POST "+oidc+"logout", s.withRealm(s.handleLogout))
	mux.HandleFunc("POST "+oidc+"revoke", s.withRealm(s.handleRevoke))
	mux.HandleFunc("GET /realms/{realm}/account", s.withRealm(s.handleAccountGet))
	mux.HandleFunc("GET /realms/{realm}/account/", s.withRealm(s.handleAccountGet))
	mux.HandleFunc("POST /realms/{realm}/account", s.withRealm(s.handleAccountPost))
	mux.HandleFunc("POST /realms/{realm}/account/", s.withRealm(s.handleAccountPost))
	mux.HandleFunc("/admin/realms", s.handleAdminRealms)
	mux.HandleFunc("/admin/realms/{realm}", s.handleAdmin)
	mux.HandleFunc("/admin/realms/{realm}/{rest...}", s.handleAdmin)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Unable to find matching target resource method"})
	})
	return mux
}

// withRealm resolves {realm} and holds the server lock for the handler: the
// model is small and requests are short, so one lock keeps every handler
// consistent. Unknown realms answer 404 "Realm does not exist"
// (services/src/main/java/org/keycloak/services/resources/RealmsResource.java).
func (s *Server) withRealm(h func(http.ResponseWriter, *http.Request, *realm)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if err := req.ParseForm(); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "Invalid form")
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		r := s.realms[req.PathValue("realm")]
		if r == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "Realm does not exist"})
			return
		}
		h(w, req, r)
	}
}

// handleRealmInfo is PublicRealmResource (GET /realms/{realm}).
func (s *Server) handleRealmInfo(w http.ResponseWriter, _ *http.Request, r *realm) {
	iss := s.issuer(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"realm":             r.name,
		"token-service":     iss + "/protocol/openid-connect",
		"account-service":   iss + "/account",
		"tokens-not-before": r.notBefore,
	})
}

// handleDiscovery mirrors services/src/main/java/org/keycloak/protocol/oidc/OIDCWellKnownProvider.java.
func (s *Server) handleDiscovery(w http.ResponseWriter, _ *http.Request, r *realm) {
	iss := s.issuer(r)
	p := iss + "/protocol/openid-connect"
	var scopes []string
	scopes = append(scopes, "openid")
	for _, sc := range r.sortedScopes() {
		if sc.protocol == "openid-connect" {
			scopes = append(scopes, sc.name)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                                   iss,
		"authorization_endpoint":                                   p + "/auth",
		"token_endpoint":                                           p + "/token",
		"introspection_endpoint":                                   p + "/token/introspect",
		"userinfo_endpoint":                                        p + "/userinfo",
		"end_session_endpoint":                                     p + "/logout",
		"frontchannel_logout_session_supported":                    true,
		"frontchannel_logout_supported":                            true,
		"jwks_uri":                                                 p + "/certs",
		"check_session_iframe":                                     p + "/login-status-iframe.html",
		"grant_types_supported":                                    []string{"authorization_code", "implicit", "refresh_token", "password", "client_credentials"},
		"acr_values_supported":                                     []string{"0", "1"},
		"response_types_supported":                                 []string{"code", "none", "id_token", "token", "id_token token", "code id_token", "code token", "code id_token token"},
		"subject_types_supported":                                  []string{"public", "pairwise"},
		"id_token_signing_alg_values_supported":                    []string{"RS256"},
		"userinfo_signing_alg_values_supported":                    []string{"RS256", "none"},
		"introspection_endpoint_auth_methods_supported":            []string{"client_secret_basic", "client_secret_post"},
		"introspection_endpoint_auth_signing_alg_values_supported": []string{"RS256"},
		"response_modes_supported":                                 []string{"query", "fragment", "form_post"},
		"registration_endpoint":                                    iss + "/clients-registrations/openid-connect",
		"token_endpoint_auth_methods_supported":                    []string{"client_secret_basic", "client_secret_post"},
		"token_endpoint_auth_signing_alg_values_supported":         []string{"RS256"},
		"claims_supported": []string{"aud", "sub", "iss", "auth_time", "name", "given_name", "family_name",
			"preferred_username", "email", "acr"},
		"claim_types_supported":                      []string{"normal"},
		"claims_parameter_supported":                 true,
		"scopes_supported":                           scopes,
		"request_parameter_supported":                true,
		"request_uri_parameter_supported":            true,
		"code_challenge_methods_supported":           []string{"plain", "S256"},
		"tls_client_certificate_bound_access_tokens": true,
		"revocation_endpoint":                        p + "/revoke",
		"revocation_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"backchannel_logout_supported":               true,
		"backchannel_logout_session_supported":       true,
	})
}

func (s *Server) handleCerts(w http.ResponseWriter, _ *http.Request, r *realm) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": r.jwks()})
}

// authenticateClient is ClientIdAndSecretAuthenticator (see
// services/src/main/java/org/keycloak/authentication/authenticators/client/ClientIdAndSecretAuthenticator.java).
// Basic credentials are URL-decoded (BasicAuthHelper.RFC6749.parseHeader).
// It writes the error response itself and returns nil on failure.
func (s *Server) authenticateClient(w http.ResponseWriter, req *http.Request, r *realm) *client {
	var clientID, secret string
	var hasSecret bool
	if h := req.Header.Get("Authorization"); strings.HasPrefix(h, "Basic ") {
		if raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic ")); err == nil {
			if id, sec, ok := strings.Cut(string(raw), ":"); ok {
				id1, err1 := url.QueryUnescape(id)
				sec1, err2 := url.QueryUnescape(sec)
				if err1 == nil && err2 == nil {
					clientID, secret, hasSecret = id1, sec1, true
				}
			}
		}
	}
	if v, ok := req.PostForm["client_id"]; ok && len(v) > 0 {
		clientID = v[0]
	}
	if v, ok := req.PostForm["client_secret"]; ok && len(v) > 0 {
		secret, hasSecret = v[0], true
	}
	if clientID == "" {
		oauthError(w, http.StatusBadRequest, "invalid_client", "Missing client_id parameter")
		return nil
	}
	c := r.clientByClientID(clientID)
	if c == nil || !c.enabled {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Invalid client or Invalid client credentials")
		return nil
	}
	if c.publicClient {
		return c
	}
	if !hasSecret || c.secret == "" || !constantTimeEqual(secret, c.secret) {
		oauthError(w, http.StatusUnauthorized, "unauthorized_client", "Invalid client or Invalid client credentials")
		return nil
	}
	return c
}

// handleToken is TokenEndpoint with the password, refresh_token and
// client_credentials grants (services/src/main/java/org/keycloak/protocol/oidc/grants/
// ResourceOwnerPasswordCredentialsGrantType.java, RefreshTokenGrantType.java,
// ClientCredentialsGrantType.java).
func (s *Server) handleToken(w http.ResponseWriter, req *http.Request, r *realm) {
	grant := req.PostForm.Get("grant_type")
	if grant == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Missing form parameter: grant_type")
		return
	}
	c := s.authenticateClient(w, req, r)
	if c == nil {
		return
	}
	if c.bearerOnly {
		oauthError(w, http.StatusBadRequest, "invalid_client", "Bearer-only not allowed")
		return
	}
	switch grant {
	case "password":
		s.passwordGrant(w, req, r, c)
	case "refresh_token":
		s.refreshGrant(w, req, r, c)
	case "client_credentials":
		s.clientCredentialsGrant(w, req, r, c)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant_type")
	}
}

func (s *Server) passwordGrant(w http.ResponseWriter, req *http.Request, r *realm, c *client) {
	if !c.directAccessGrants {
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "Client not allowed for direct access grants")
		return
	}
	if !validScope(r, c, req.PostForm.Get("scope")) {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "Invalid scopes: "+req.PostForm.Get("scope"))
		return
	}
	username := req.PostForm.Get("username")
	if _, ok := req.PostForm["username"]; !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_request", "Missing parameter: username")
		return
	}
	// directgrant/ValidateUsername.java: lookup by username, then by email.
	u := r.userByUsername(username)
	if u == nil && r.loginWithEmailAllowed && strings.Contains(username, "@") {
		u = r.userByEmail(username)
	}
	if u == nil || u.serviceAccountFor != "" {
		oauthError(w, http.StatusUnauthorized, "invalid_grant", "Invalid user credentials")
		return
	}
	now := s.now()
	if s.bruteForceLocked(r, u, now) {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid user credentials")
		return
	}
	if !u.enabled {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Account disabled")
		return
	}
	// directgrant/ValidatePassword.java
	if !u.password.verify(req.PostForm.Get("password")) {
		s.recordFailure(r, u, now, clientIP(req))
		oauthError(w, http.StatusUnauthorized, "invalid_grant", "Invalid user credentials")
		return
	}
	s.recordSuccess(r, u)
	// ResourceOwnerPasswordCredentialsGrantType: pending required actions,
	// including VERIFY_PROFILE for missing required profile attributes.
	if len(u.requiredActions) > 0 || (r.verifyProfileEnabled && r.profile.requiredMissing(u)) {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Account is not fully set up")
		return
	}
	sess := &userSession{id: s.newID(), userID: u.id, started: now, lastAccess: now, authTime: now.Unix(),
		ip: clientIP(req), acr: "1", clients: map[string]*clientSession{}}
	sess.clients[c.id] = &clientSession{clientID: c.id, started: now, timestamp: now.Unix()}
	resp, err := s.issueTokens(r, c, u, sess, req.PostForm.Get("scope"), true)
	if err != nil {
		s.serverError(w, err)
		return
	}
	r.sessions[sess.id] = sess
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) clientCredentialsGrant(w http.ResponseWriter, req *http.Request, r *realm, c *client) {
	if c.publicClient {
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "Public client not allowed to retrieve service account")
		return
	}
	if !c.serviceAccounts {
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "Client not enabled to retrieve service account")
		return
	}
	if !validScope(r, c, req.PostForm.Get("scope")) {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "Invalid scopes: "+req.PostForm.Get("scope"))
		return
	}
	var u *user
	for _, cand := range r.users {
		if cand.serviceAccountFor == c.id {
			u = cand
		}
	}
	if u == nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Service account user not found")
		return
	}
	if !u.enabled {
		oauthError(w, http.StatusBadRequest, "invalid_request", "User 'service-account' disabled")
		return
	}
	now := s.now()
	sess := &userSession{id: s.newID(), userID: u.id, started: now, lastAccess: now, authTime: now.Unix(),
		ip: clientIP(req), acr: "1", clients: map[string]*clientSession{}, serviceAccount: true}
	sess.clients[c.id] = &clientSession{clientID: c.id, started: now, timestamp: now.Unix()}
	// Refresh tokens for client_credentials are off by default
	// (OIDCAdvancedConfigWrapper.isUseRefreshTokenForClientCredentialsGrant).
	withRefresh := c.attributes["client_credentials.use_refresh_token"] == "true"
	resp, err := s.issueTokens(r, c, u, sess, req.PostForm.Get("scope"), withRefresh)
	if err != nil {
		s.serverError(w, err)
		return
	}
	r.sessions[sess.id] = sess
	writeJSON(w, http.StatusOK, resp)
}

// refreshGrant is RefreshTokenGrantType + TokenManager.refreshAccessToken and
// validateTokenReuse (revokeRefreshToken / refreshTokenMaxReuse).
func (s *Server) refreshGrant(w http.ResponseWriter, req *http.Request, r *realm, c *client) {
	raw := req.PostForm.Get("refresh_token")
	if raw == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Missing parameter: refresh_token")
		return
	}
	claims, err := r.parseJWT(raw)
	if err != nil || claimString(claims, "typ") != "Refresh" || claimString(claims, "iss") != s.issuer(r) {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid refresh token")
		return
	}
	now := s.now()
	if claimInt(claims, "exp") <= now.Unix() {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Token is not active")
		return
	}
	if claimString(claims, "azp") != c.clientID {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid refresh token. Token client and authorized client don't match")
		return
	}
	sess, u := s.activeSession(r, claimString(claims, "sid"), now)
	if sess == nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Session not active")
		return
	}
	cs := sess.clients[c.id]
	if cs == nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Session doesn't have required client")
		return
	}
	if claimInt(claims, "iat") < r.notBefore || claimInt(claims, "iat") < u.notBefore {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Stale token")
		return
	}
	if !u.enabled {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "User disabled")
		return
	}
	if r.revokeRefreshToken {
		// TokenManager.validateTokenReuse: a token older than the client
		// session's last refresh is stale; the current one may be used
		// refreshTokenMaxReuse+1 times. A failure detaches the client session,
		// so the newest refresh token dies with the reused one.
		jti := claimString(claims, "jti")
		var reuseErr string
		if cs.currentToken != "" && jti != cs.currentToken && claimInt(claims, "iat") < cs.timestamp {
			reuseErr = "Stale token"
		} else {
			if jti != cs.currentToken {
				cs.currentToken = jti
				cs.tokenUseCount = 0
			}
			if cs.tokenUseCount > r.refreshTokenMaxReuse {
				reuseErr = "Maximum allowed refresh token reuse exceeded"
			}
		}
		if reuseErr != "" {
			delete(sess.clients, c.id)
			oauthError(w, http.StatusBadRequest, "invalid_grant", reuseErr)
			return
		}
		cs.tokenUseCount++
	}
	cs.timestamp = now.Unix()
	sess.lastAccess = now
	resp, err := s.issueTokens(r, c, u, sess, claimString(claims, "scope"), true)
	if err != nil {
		s.serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// validScope is TokenManager.isValidScope: every requested scope but
// "openid" must be a default or optional client scope of the client.
func validScope(r *realm, c *client, scopeParam string) bool {
	names := map[string]bool{}
	for _, id := range append(append([]string(nil), c.defaultScopes...), c.optionalScopes...) {
		if sc := r.scopes[id]; sc != nil {
			names[sc.name] = true
		}
	}
	for _, sc := range strings.Fields(scopeParam) {
		if sc != "openid" && !names[sc] {
			return false
		}
	}
	return true
}

// activeSession returns the session and its user when the session exists
// and has not passed its idle or max lifespan (AuthenticationManager.isSessionValid).
func (s *Server) activeSession(r *realm, sid string, now time.Time) (*userSession, *user) {
	sess := r.sessions[sid]
	if sess == nil {
		return nil, nil
	}
	idle := time.Duration(r.ssoSessionIdleTimeout) * time.Second
	maxLife := time.Duration(r.ssoSessionMaxLifespan) * time.Second
	if now.After(sess.lastAccess.Add(idle)) || now.After(sess.started.Add(maxLife)) {
		delete(r.sessions, sid)
		return nil, nil
	}
	u := r.users[sess.userID]
	if u == nil {
		delete(r.sessions, sid)
		return nil, nil
	}
	return sess, u
}

type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
	RefreshToken     string `json:"refresh_token,omitempty"`
	TokenType        string `json:"token_type"`
	IDToken          string `json:"id_token,omitempty"`
	NotBeforePolicy  int64  `json:"not-before-policy"`
	SessionState     string `json:"session_state,omitempty"`
	Scope            string `json:"scope"`
}

// issueTokens builds the access, refresh and ID tokens
// (TokenManager.responseBuilder / AccessTokenResponseBuilder.build).
func (s *Server) issueTokens(r *realm, c *client, u *user, sess *userSession, scopeParam string, withRefresh bool) (*tokenResponse, error) {
	now := s.now()
	g := s.newGrantContext(r, c, u, sess, scopeParam, s.issuer(r))
	lifespan := int64(r.accessTokenLifespan)
	if v := c.attributes["access.token.lifespan"]; v != "" {
		var n int64
		if _, err := fmt.Sscan(v, &n); err == nil && n > 0 {
			lifespan = n
		}
	}
	exp := now.Unix() + lifespan
	// The access token may not outlive the session (TokenManager.getTokenExpiration).
	if maxEnd := sess.started.Unix() + int64(r.ssoSessionMaxLifespan); !sess.serviceAccount && exp > maxEnd {
		exp = maxEnd
	}
	at := map[string]any{
		"exp": exp, "iat": now.Unix(), "jti": s.newID(), "iss": g.issuer, "typ": "Bearer",
		"azp": c.clientID, "sid": sess.id, "scope": g.scopeText,
	}
	if err := g.applyMappers(at, targetAccess); err != nil {
		return nil, err
	}
	access, err := signRS256(r.keys[0], at)
	if err != nil {
		return nil, err
	}
	resp := &tokenResponse{AccessToken: access, ExpiresIn: exp - now.Unix(), TokenType: "Bearer",
		NotBeforePolicy: r.notBefore, SessionState: sess.id, Scope: g.scopeText}
	if g.openid {
		it := map[string]any{
			"exp": exp, "iat": now.Unix(), "jti": s.newID(), "iss": g.issuer, "aud": c.clientID,
			"sub": u.id, "typ": "ID", "azp": c.clientID, "sid": sess.id, "at_hash": atHash(access),
		}
		if err := g.applyMappers(it, targetID); err != nil {
			return nil, err
		}
		if resp.IDToken, err = signRS256(r.keys[0], it); err != nil {
			return nil, err
		}
	}
	if withRefresh {
		idleEnd := now.Unix() + int64(r.ssoSessionIdleTimeout)
		maxEnd := sess.started.Unix() + int64(r.ssoSessionMaxLifespan)
		rexp := min(idleEnd, maxEnd)
		jti := s.newID()
		rt := map[string]any{
			"exp": rexp, "iat": now.Unix(), "jti": jti, "iss": g.issuer, "aud": g.issuer,
			"sub": u.id, "typ": "Refresh", "azp": c.clientID, "sid": sess.id, "scope": g.scopeText,
		}
		if resp.RefreshToken, err = signHS512(r.id, r.hmacKey, rt); err != nil {
			return nil, err
		}
		resp.RefreshExpiresIn = rexp - now.Unix()
	}
	return resp, nil
}

// accessTokenContext validates a bearer access token of the realm the way
// AppAuthManager.authenticateBearerToken / TokenManager.checkTokenValidForIntrospection
// do: signature, issuer, type, expiry, not-before, revocation, live session
// with the client, enabled user.
func (s *Server) validateAccessToken(r *realm, raw string) (map[string]any, *user, *client, *userSession, error) {
	claims, err := r.parseJWT(raw)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	now := s.now()
	if claimString(claims, "typ") != "Bearer" || claimString(claims, "iss") != s.issuer(r) {
		return nil, nil, nil, nil, errBadToken
	}
	if claimInt(claims, "exp") <= now.Unix() {
		return nil, nil, nil, nil, errors.New("token expired")
	}
	if _, revoked := r.revoked[claimString(claims, "jti")]; revoked {
		return nil, nil, nil, nil, errors.New("token revoked")
	}
	c := r.clientByClientID(claimString(claims, "azp"))
	if c == nil || !c.enabled {
		return nil, nil, nil, nil, errors.New("client gone")
	}
	sess, u := s.activeSession(r, claimString(claims, "sid"), now)
	if sess == nil || sess.clients[c.id] == nil {
		return nil, nil, nil, nil, errors.New("session not active")
	}
	if !u.enabled || claimInt(claims, "iat") < r.notBefore || claimInt(claims, "iat") < u.notBefore {
		return nil, nil, nil, nil, errors.New("user disabled or token stale")
	}
	return claims, u, c, sess, nil
}

func bearer(req *http.Request) string {
	h := req.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// handleUserinfo is UserInfoEndpoint: 401 with WWW-Authenticate on a bad token.
func (s *Server) handleUserinfo(w http.ResponseWriter, req *http.Request, r *realm) {
	raw := bearer(req)
	if raw == "" {
		raw = req.PostForm.Get("access_token")
	}
	if raw == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+r.name+`", error="invalid_request", error_description="Token not provided"`)
		oauthError(w, http.StatusUnauthorized, "invalid_request", "Token not provided")
		return
	}
	claims, u, c, sess, err := s.validateAccessToken(r, raw)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+r.name+`", error="invalid_token", error_description="Token verification failed"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token", "Token verification failed")
		return
	}
	// UserInfoEndpoint: only tokens of an OpenID request may read userinfo.
	if !contains(strings.Fields(claimString(claims, "scope")), "openid") {
		oauthError(w, http.StatusForbidden, "insufficient_scope", "Missing openid scope")
		return
	}
	g := s.newGrantContext(r, c, u, sess, claimString(claims, "scope"), s.issuer(r))
	out := map[string]any{"sub": u.id}
	if err := g.applyMappers(out, targetUserinfo); err != nil {
		s.serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// handleIntrospect is TokenIntrospectionEndpoint + AccessTokenIntrospectionProvider
// (services/src/main/java/org/keycloak/protocol/oidc/endpoints/TokenIntrospectionEndpoint.java):
// public clients get 403 "Client not allowed.".
func (s *Server) handleIntrospect(w http.ResponseWriter, req *http.Request, r *realm) {
	c := s.authenticateClient(w, req, r)
	if c == nil {
		return
	}
	if c.publicClient {
		oauthError(w, http.StatusForbidden, "invalid_request", "Client not allowed.")
		return
	}
	raw := req.PostForm.Get("token")
	if raw == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Token not provided.")
		return
	}
	inactive := map[string]any{"active": false}
	claims, err := r.parseJWT(raw)
	if err != nil {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	if claimString(claims, "typ") == "Refresh" {
		now := s.now()
		sess, _ := s.activeSession(r, claimString(claims, "sid"), now)
		if sess == nil || claimInt(claims, "exp") <= now.Unix() {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		claims["active"] = true
		writeJSON(w, http.StatusOK, claims)
		return
	}
	claims, u, tc, sess, err := s.validateAccessToken(r, raw)
	if err != nil {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	// Keycloak 25+ rebuilds the claims with the introspection switches of the mappers.
	g := s.newGrantContext(r, tc, u, sess, claimString(claims, "scope"), s.issuer(r))
	out := map[string]any{}
	for _, k := range []string{"exp", "iat", "jti", "iss", "typ", "azp", "sid", "scope"} {
		if v, ok := claims[k]; ok {
			out[k] = v
		}
	}
	if err := g.applyMappers(out, targetIntrospection); err != nil {
		s.serverError(w, err)
		return
	}
	out["client_id"] = tc.clientID
	out["username"] = u.username
	out["token_type"] = "Bearer"
	out["active"] = true
	writeJSON(w, http.StatusOK, out)
}

// handleLogout is LogoutEndpoint.logoutToken (backchannel logout with a
// refresh token): the session ends, 204.
func (s *Server) handleLogout(w http.ResponseWriter, req *http.Request, r *realm) {
	c := s.authenticateClient(w, req, r)
	if c == nil {
		return
	}
	raw := req.PostForm.Get("refresh_token")
	if raw == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "No refresh token")
		return
	}
	claims, err := r.parseJWT(raw)
	if err != nil || claimString(claims, "typ") != "Refresh" {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid refresh token")
		return
	}
	if claimString(claims, "azp") != c.clientID {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid refresh token. Token client and authorized client don't match")
		return
	}
	if claimInt(claims, "exp") <= s.now().Unix() {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Refresh token expired")
		return
	}
	delete(r.sessions, claimString(claims, "sid"))
	w.WriteHeader(http.StatusNoContent)
}

// handleRevoke is TokenRevocationEndpoint: a refresh token detaches its
// client session (the user session ends with its last client); an access
// token is remembered as revoked until it expires. 200 even for unknown tokens.
func (s *Server) handleRevoke(w http.ResponseWriter, req *http.Request, r *realm) {
	c := s.authenticateClient(w, req, r)
	if c == nil {
		return
	}
	raw := req.PostForm.Get("token")
	if raw == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Token not provided")
		return
	}
	claims, err := r.parseJWT(raw)
	if err != nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	if claimString(claims, "azp") != c.clientID {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Unmatching clients")
		return
	}
	switch claimString(claims, "typ") {
	case "Refresh":
		if sess := r.sessions[claimString(claims, "sid")]; sess != nil {
			delete(sess.clients, c.id)
			if len(sess.clients) == 0 {
				delete(r.sessions, sess.id)
			}
		}
	case "Bearer":
		r.revoked[claimString(claims, "jti")] = claimInt(claims, "exp")
	}
	w.WriteHeader(http.StatusOK)
}

func clientIP(req *http.Request) string {
	host := req.RemoteAddr
	if i := strings.LastIndex(host, ":"); i > 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}
