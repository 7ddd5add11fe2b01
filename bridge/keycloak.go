package bridge

// This file is the gocloak adapter: the only code of the project that
// imports gocloak. Everything else in the bridge talks to Keycloak through
// the small methods below, which return *Error values mapped to the
// bridge's sentinel errors.
//
// gocloak v13.9.0 gaps and how they are worked around here
// (docs/keycloak.md, "How the bridge talks to Keycloak"):
//  1. No user-profile API: raw requests built with GetRequestWithBearerAuth.
//  2. UpdateUser PUTs gocloak's User struct, wiping fields it does not
//     carry and sending Enabled: users are read and written as raw JSON
//     maps, and enabled is never sent.
//  3. ProtocolMappersConfig lacks introspection.token.claim: mappers and
//     client scopes are raw maps.
//  4. RetrospectToken is unusable: introspection is a raw form POST.
//  5. APIError.Type is always unknown: errors are classified by status
//     (APIError.Code) and Keycloak's error body.
//  6. Basic-auth client secrets are not URL-encoded: every client
//     authentication uses client_secret_post (form fields).
//  7. DecodeAccessToken is never used: internal/token verifies tokens.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/go-resty/resty/v2"
)

// keycloak performs single Keycloak calls. It holds no token: callers pass
// the bearer token to use. Safe for concurrent use.
type keycloak struct {
	gc      *gocloak.GoCloak
	base    string
	realm   string
	timeout time.Duration
}

// quietLogger keeps resty from writing to stderr; failures are returned.
type quietLogger struct{}

func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Debugf(string, ...any) {}

func newKeycloak(base, realm string, hc *http.Client, timeout time.Duration) *keycloak {
	base = strings.TrimRight(base, "/")
	gc := gocloak.NewClient(base)
	rc := resty.NewWithClient(hc)
	rc.SetLogger(quietLogger{})
	gc.SetRestyClient(rc)
	return &keycloak{gc: gc, base: base, realm: realm, timeout: timeout}
}

// realmURL is {base}/realms/{realm}/{path...}.
func (k *keycloak) realmURL(path ...string) string {
	return k.base + "/realms/" + url.PathEscape(k.realm) + joinPath(path)
}

// adminURL is {base}/admin/realms/{realm}/{path...}.
func (k *keycloak) adminURL(path ...string) string {
	return k.base + "/admin/realms/" + url.PathEscape(k.realm) + joinPath(path)
}

func joinPath(path []string) string {
	var b strings.Builder
	for _, p := range path {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(p))
	}
	return b.String()
}

// request is one raw call.
type request struct {
	op     string
	method string
	url    string
	token  string            // bearer token; empty for token-endpoint calls
	query  map[string]string // query parameters
	form   map[string]string // form body (client_secret_post calls)
	body   any               // JSON body
	out    any               // decoded from a 2xx JSON body when non-nil
}

// response is what a successful raw call returns besides the decoded body.
type response struct {
	status   int
	location string
}

// do runs r with the bridge's per-call timeout and maps failures to *Error.
func (k *keycloak) do(ctx context.Context, r request) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	var req *resty.Request
	if r.token != "" {
		req = k.gc.GetRequestWithBearerAuth(ctx, r.token)
	} else {
		req = k.gc.GetRequest(ctx)
	}
	req.SetHeader("Accept", "application/json")
	if r.query != nil {
		req.SetQueryParams(r.query)
	}
	if r.form != nil {
		req.SetHeader("Content-Type", "application/x-www-form-urlencoded")
		req.SetFormData(r.form)
	}
	if r.body != nil {
		req.SetHeader("Content-Type", "application/json")
		req.SetBody(r.body)
	}
	resp, err := req.Execute(r.method, r.url)
	if resp == nil || resp.RawResponse == nil {
		msg := "no response"
		if err != nil {
			msg = transportMessage(err)
		}
		return response{}, &Error{Op: r.op, Message: msg, Kind: ErrUnavailable}
	}
	status := resp.StatusCode()
	if status < 200 || status > 299 {
		code, msg := parseErrorBody(resp.Body())
		if msg == "" && code == "" {
			msg = http.StatusText(status)
		}
		return response{}, &Error{Op: r.op, Status: status, Code: code, Message: msg, Kind: kindForStatus(status)}
	}
	if r.out != nil && status != http.StatusNoContent && len(resp.Body()) > 0 {
		if err := json.Unmarshal(resp.Body(), r.out); err != nil {
			return response{}, &Error{Op: r.op, Status: status, Message: "decoding Keycloak's answer: " + err.Error(), Kind: ErrUnavailable}
		}
	}
	return response{status: status, location: resp.Header().Get("Location")}, nil
}

// transportMessage describes a transport failure without the request URL's
// query or any body.
func transportMessage(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return msg
}

// parseErrorBody reads Keycloak's error shapes: OAuth {error,
// error_description}, admin {errorMessage}, {field, errorMessage, params}
// and {errors: [{errorMessage}...]}.
func parseErrorBody(b []byte) (code, msg string) {
	var e struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		ErrorMessage     string `json:"errorMessage"`
		Field            string `json:"field"`
		Errors           []struct {
			ErrorMessage string `json:"errorMessage"`
			Field        string `json:"field"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return "", ""
	}
	msg = e.ErrorDescription
	if msg == "" {
		msg = e.ErrorMessage
	}
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	for _, x := range e.Errors {
		part := x.ErrorMessage
		if x.Field != "" {
			part = x.Field + ": " + part
		}
		if msg != "" {
			msg += "; "
		}
		msg += part
	}
	if len(msg) > 500 {
		msg = msg[:500]
	}
	return e.Error, msg
}

// apiError maps an error returned by a typed gocloak call. gocloak's
// APIError.Type is always "unknown", so only Code (the HTTP status, 0 when
// Keycloak was not reached) and Message are used.
func apiError(op string, err error) error {
	if err == nil {
		return nil
	}
	var ae *gocloak.APIError
	if errors.As(err, &ae) {
		msg := ae.Message
		if len(msg) > 500 {
			msg = msg[:500]
		}
		return &Error{Op: op, Status: ae.Code, Message: msg, Kind: kindForStatus(ae.Code)}
	}
	var plain gocloak.APIError
	if errors.As(err, &plain) {
		return &Error{Op: op, Status: plain.Code, Message: plain.Message, Kind: kindForStatus(plain.Code)}
	}
	return &Error{Op: op, Message: transportMessage(err), Kind: ErrUnavailable}
}

// withTimeout bounds a typed gocloak call.
func (k *keycloak) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, k.timeout)
}

// tokenResponse is Keycloak's token endpoint answer.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	IDToken          string `json:"id_token"`
	RefreshToken     string `json:"refresh_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int    `json:"expires_in"`
	RefreshExpiresIn int    `json:"refresh_expires_in"`
	SessionState     string `json:"session_state"`
	Scope            string `json:"scope"`
}

// clientForm adds client_secret_post authentication to a form.
func clientForm(clientID, secret string, form map[string]string) map[string]string {
	form["client_id"] = clientID
	if secret != "" {
		form["client_secret"] = secret
	}
	return form
}

// tokenGrant posts a grant to the token endpoint.
func (k *keycloak) tokenGrant(ctx context.Context, op, clientID, secret string, form map[string]string) (tokenResponse, error) {
	var t tokenResponse
	_, err := k.do(ctx, request{
		op: op, method: http.MethodPost, url: k.realmURL("protocol", "openid-connect", "token"),
		form: clientForm(clientID, secret, form), out: &t,
	})
	if err != nil {
		return tokenResponse{}, err
	}
	if t.AccessToken == "" {
		return tokenResponse{}, &Error{Op: op, Status: http.StatusOK, Message: "no access_token in Keycloak's answer", Kind: ErrUnavailable}
	}
	return t, nil
}

// logout ends the Keycloak session of a refresh token.
func (k *keycloak) logout(ctx context.Context, clientID, secret, refreshToken string) error {
	_, err := k.do(ctx, request{
		op: "logout", method: http.MethodPost, url: k.realmURL("protocol", "openid-connect", "logout"),
		form: clientForm(clientID, secret, map[string]string{"refresh_token": refreshToken}),
	})
	return err
}

// revoke revokes a token (RFC 7009).
func (k *keycloak) revoke(ctx context.Context, clientID, secret, tok, hint string) error {
	form := map[string]string{"token": tok}
	if hint != "" {
		form["token_type_hint"] = hint
	}
	_, err := k.do(ctx, request{
		op: "revoke", method: http.MethodPost, url: k.realmURL("protocol", "openid-connect", "revoke"),
		form: clientForm(clientID, secret, form),
	})
	return err
}

// introspect posts a token to the introspection endpoint.
func (k *keycloak) introspect(ctx context.Context, clientID, secret, tok string) (map[string]any, error) {
	var out map[string]any
	_, err := k.do(ctx, request{
		op: "introspect", method: http.MethodPost, url: k.realmURL("protocol", "openid-connect", "token", "introspect"),
		form: clientForm(clientID, secret, map[string]string{"token": tok}), out: &out,
	})
	return out, err
}

// userRaw reads a user as Keycloak's full JSON representation.
func (k *keycloak) userRaw(ctx context.Context, token, id string) (map[string]any, error) {
	var u map[string]any
	_, err := k.do(ctx, request{op: "get user", method: http.MethodGet, url: k.adminURL("users", id), token: token, out: &u})
	if err == nil && u == nil {
		err = &Error{Op: "get user", Status: http.StatusOK, Message: "empty user representation", Kind: ErrUnavailable}
	}
	return u, err
}

// putUserRaw PUTs a user representation as given.
func (k *keycloak) putUserRaw(ctx context.Context, token, id string, u map[string]any) error {
	_, err := k.do(ctx, request{op: "update user", method: http.MethodPut, url: k.adminURL("users", id), token: token, body: u})
	return err
}

// bruteForce reads a user's brute-force status.
func (k *keycloak) bruteForce(ctx context.Context, token, id string) (map[string]any, error) {
	var out map[string]any
	_, err := k.do(ctx, request{op: "brute-force status", method: http.MethodGet, url: k.adminURL("attack-detection", "brute-force", "users", id), token: token, out: &out})
	return out, err
}

// realmRolesOfUser returns the effective realm role names of a user.
func (k *keycloak) realmRolesOfUser(ctx context.Context, token, id string) ([]string, error) {
	ctx, cancel := k.withTimeout(ctx)
	defer cancel()
	roles, err := k.gc.GetCompositeRealmRolesByUserID(ctx, token, k.realm, id)
	if err != nil {
		return nil, apiError("get user realm roles", err)
	}
	names := make([]string, 0, len(roles))
	for _, r := range roles {
		if r != nil && r.Name != nil {
			names = append(names, *r.Name)
		}
	}
	return names, nil
}

// groupsOfUser returns a user's groups.
func (k *keycloak) groupsOfUser(ctx context.Context, token, id string) ([]Group, error) {
	ctx, cancel := k.withTimeout(ctx)
	defer cancel()
	max := 1000
	groups, err := k.gc.GetUserGroups(ctx, token, k.realm, id, gocloak.GetGroupsParams{Max: &max})
	if err != nil {
		return nil, apiError("get user groups", err)
	}
	out := make([]Group, 0, len(groups))
	for _, g := range groups {
		if g == nil {
			continue
		}
		out = append(out, Group{ID: gocloak.PString(g.ID), Name: gocloak.PString(g.Name), Path: gocloak.PString(g.Path)})
	}
	return out, nil
}

// clientByClientID finds a client by its clientId.
func (k *keycloak) clientByClientID(ctx context.Context, token, clientID string) (Client, error) {
	ctx, cancel := k.withTimeout(ctx)
	defer cancel()
	clients, err := k.gc.GetClients(ctx, token, k.realm, gocloak.GetClientsParams{ClientID: &clientID})
	if err != nil {
		return Client{}, apiError("find client", err)
	}
	for _, c := range clients {
		if c != nil && gocloak.PString(c.ClientID) == clientID {
			return Client{
				ID: gocloak.PString(c.ID), ClientID: clientID,
				PublicClient:         c.PublicClient != nil && *c.PublicClient,
				DirectAccessGrants:   c.DirectAccessGrantsEnabled != nil && *c.DirectAccessGrantsEnabled,
				ServiceAccountsOn:    c.ServiceAccountsEnabled != nil && *c.ServiceAccountsEnabled,
				DefaultClientScopes:  derefStrings(c.DefaultClientScopes),
				OptionalClientScopes: derefStrings(c.OptionalClientScopes),
			}, nil
		}
	}
	return Client{}, &Error{Op: "find client", Status: http.StatusNotFound, Message: fmt.Sprintf("no client %q", clientID), Kind: ErrNotFound}
}

func derefStrings(p *[]string) []string {
	if p == nil {
		return nil
	}
	return append([]string(nil), (*p)...)
}

// defaultScopes lists the default client scopes of a client (by UUID).
func (k *keycloak) defaultScopes(ctx context.Context, token, clientUUID string) ([]ClientScope, error) {
	ctx, cancel := k.withTimeout(ctx)
	defer cancel()
	scopes, err := k.gc.GetClientsDefaultScopes(ctx, token, k.realm, clientUUID)
	if err != nil {
		return nil, apiError("get default client scopes", err)
	}
	out := make([]ClientScope, 0, len(scopes))
	for _, s := range scopes {
		if s != nil {
			out = append(out, ClientScope{ID: gocloak.PString(s.ID), Name: gocloak.PString(s.Name)})
		}
	}
	return out, nil
}

// addDefaultScope attaches a client scope as a default scope of a client.
func (k *keycloak) addDefaultScope(ctx context.Context, token, clientUUID, scopeID string) error {
	ctx, cancel := k.withTimeout(ctx)
	defer cancel()
	return apiError("add default client scope", k.gc.AddDefaultScopeToClient(ctx, token, k.realm, clientUUID, scopeID))
}

// realmRole reads a realm role by name.
func (k *keycloak) realmRole(ctx context.Context, token, name string) (Role, error) {
	ctx, cancel := k.withTimeout(ctx)
	defer cancel()
	r, err := k.gc.GetRealmRole(ctx, token, k.realm, name)
	if err != nil {
		return Role{}, apiError("get realm role", err)
	}
	return Role{ID: gocloak.PString(r.ID), Name: gocloak.PString(r.Name), Description: gocloak.PString(r.Description)}, nil
}

// createRealmRole creates a realm role.
func (k *keycloak) createRealmRole(ctx context.Context, token string, r Role) error {
	ctx, cancel := k.withTimeout(ctx)
	defer cancel()
	role := gocloak.Role{Name: &r.Name}
	if r.Description != "" {
		role.Description = &r.Description
	}
	_, err := k.gc.CreateRealmRole(ctx, token, k.realm, role)
	return apiError("create realm role", err)
}

// idFromLocation returns the last path segment of a Location header.
func idFromLocation(loc string) string {
	loc = strings.TrimRight(loc, "/")
	if i := strings.LastIndex(loc, "/"); i >= 0 {
		return loc[i+1:]
	}
	return loc
}
