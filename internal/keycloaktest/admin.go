package keycloaktest

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Admin REST API (services/src/main/java/org/keycloak/services/resources/admin/*).
// Authorization follows services/src/main/java/org/keycloak/services/resources/admin/permissions/
// (UserPermissions, ClientPermissions, RealmPermissions, RolePermissions):
// master-realm administrators may do everything; a caller of the realm itself
// needs the realm-management client role of the endpoint, where manage-*
// implies view-*. Error bodies are what KeycloakErrorHandler and ErrorResponse
// produce: {"error": "..."} for exceptions, {"errorMessage": "..."} for
// ErrorResponse.error/exists.

type adminCaller struct {
	superuser bool
	roles     map[string]bool // realm-management role names, composites expanded
}

// can reports whether the caller holds a permission; the implications are
// those of AdminPermissions (manage-x implies view-x implies query-x).
func (a *adminCaller) can(perm string) bool {
	if a.superuser {
		return true
	}
	has := func(names ...string) bool {
		for _, n := range names {
			if a.roles[n] {
				return true
			}
		}
		return false
	}
	switch perm {
	case "query-users":
		return has("query-users", "view-users", "manage-users")
	case "view-users":
		return has("view-users", "manage-users")
	case "view-clients":
		return has("view-clients", "manage-clients")
	case "view-realm":
		return has("view-realm", "manage-realm")
	case "any":
		return len(a.roles) > 0
	}
	return has(perm)
}

type apiError struct {
	status int
	body   any
}

func (e *apiError) Error() string { b, _ := json.Marshal(e.body); return string(b) }

func errorBody(status int, msg string) *apiError {
	return &apiError{status: status, body: map[string]string{"error": msg}}
}

func errorMessage(status int, msg string) *apiError {
	return &apiError{status: status, body: map[string]string{"errorMessage": msg}}
}

var (
	errForbidden    = errorBody(http.StatusForbidden, "HTTP 403 Forbidden")
	errUnauthorized = errorBody(http.StatusUnauthorized, "HTTP 401 Unauthorized")
	errNoResource   = errorBody(http.StatusNotFound, "Unable to find matching target resource method")
	errBadMethod    = errorBody(http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed")
)

// authenticateAdmin validates the bearer token: it must come from the master
// realm or from the target realm (AdminRoot.authenticateRealmAdminRequest).
func (s *Server) authenticateAdmin(req *http.Request, target *realm) (*adminCaller, error) {
	raw := bearer(req)
	if raw == "" {
		return nil, errUnauthorized
	}
	for _, tr := range []*realm{s.realms["master"], target} {
		if tr == nil {
			continue
		}
		claims, err := tr.parseJWT(raw)
		if err != nil || claimString(claims, "iss") != s.issuer(tr) {
			continue
		}
		_, u, _, _, err := s.validateAccessToken(tr, raw)
		if err != nil {
			return nil, errUnauthorized
		}
		eff := tr.effectiveRoles(u)
		if tr.name == "master" {
			if ro := tr.realmRole("admin"); ro != nil && eff[ro.id] {
				return &adminCaller{superuser: true}, nil
			}
		}
		if target == nil || tr != target {
			return &adminCaller{roles: map[string]bool{}}, nil
		}
		out := &adminCaller{roles: map[string]bool{}}
		if rm := tr.clientByClientID(realmManagementClientID); rm != nil {
			for id := range eff {
				if ro := tr.roles[id]; ro != nil && ro.clientRole && ro.container == rm.id {
					out.roles[ro.name] = true
				}
			}
		}
		return out, nil
	}
	return nil, errUnauthorized
}

func (s *Server) writeAPIError(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeJSON(w, ae.status, ae.body)
		return
	}
	s.serverError(w, err)
}

func decodeBody(req *http.Request, v any) error {
	dec := json.NewDecoder(req.Body)
	if err := dec.Decode(v); err != nil {
		// KeycloakErrorHandler on a JsonProcessingException.
		return &apiError{status: http.StatusBadRequest, body: map[string]string{
			"error": "unknown_error", "error_description": "Cannot parse the JSON"}}
	}
	return nil
}

// handleAdminRealms serves /admin/realms: list (GET) and create (POST).
func (s *Server) handleAdminRealms(w http.ResponseWriter, req *http.Request) {
	s.mu.Lock()
	caller, err := s.authenticateAdmin(req, nil)
	s.mu.Unlock()
	if err != nil {
		s.writeAPIError(w, err)
		return
	}
	switch req.Method {
	case http.MethodGet:
		s.mu.Lock()
		defer s.mu.Unlock()
		var out []any
		for _, r := range s.realms {
			if caller.superuser {
				out = append(out, s.realmToRep(r))
			}
		}
		writeJSON(w, http.StatusOK, out)
	case http.MethodPost:
		if !caller.superuser {
			s.writeAPIError(w, errForbidden)
			return
		}
		var rep realmRep
		if err := decodeBody(req, &rep); err != nil {
			s.writeAPIError(w, err)
			return
		}
		if err := s.importRep(&rep); err != nil {
			if errors.Is(err, ErrRealmExists) {
				// RealmsAdminResource.importRealm on ModelDuplicateException.
				s.writeAPIError(w, errorMessage(http.StatusConflict, "Conflict detected. See logs for details"))
				return
			}
			s.writeAPIError(w, errorMessage(http.StatusBadRequest, err.Error()))
			return
		}
		w.Header().Set("Location", s.url+"/admin/realms/"+rep.Realm)
		w.WriteHeader(http.StatusCreated)
	default:
		s.writeAPIError(w, errBadMethod)
	}
}

// handleAdmin dispatches /admin/realms/{realm}/... under the server lock.
func (s *Server) handleAdmin(w http.ResponseWriter, req *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.realms[req.PathValue("realm")]
	caller, err := s.authenticateAdmin(req, r)
	if err != nil {
		s.writeAPIError(w, err)
		return
	}
	if r == nil {
		if caller.superuser {
			s.writeAPIError(w, errorBody(http.StatusNotFound, "Realm not found."))
		} else {
			s.writeAPIError(w, errForbidden)
		}
		return
	}
	rest := req.PathValue("rest")
	var seg []string
	if rest != "" {
		seg = splitPath(rest)
	}
	a := &adminRequest{s: s, w: w, req: req, r: r, caller: caller, seg: seg}
	if err := a.dispatch(); err != nil {
		s.writeAPIError(w, err)
	}
}

type adminRequest struct {
	s      *Server
	w      http.ResponseWriter
	req    *http.Request
	r      *realm
	caller *adminCaller
	seg    []string
}

func (a *adminRequest) need(perm string) error {
	if !a.caller.can(perm) {
		return errForbidden
	}
	return nil
}

func (a *adminRequest) json(status int, v any) error {
	writeJSON(a.w, status, v)
	return nil
}

func (a *adminRequest) noContent() error {
	a.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *adminRequest) created(path string) error {
	a.w.Header().Set("Location", a.s.url+"/admin/realms/"+a.r.name+"/"+path)
	a.w.WriteHeader(http.StatusCreated)
	return nil
}

func (a *adminRequest) method() string { return a.req.Method }

func (a *adminRequest) dispatch() error {
	seg := a.seg
	if len(seg) == 0 {
		return a.realmResource()
	}
	switch seg[0] {
	case "users":
		return a.users(seg[1:])
	case "roles":
		return a.realmRoles(seg[1:])
	case "clients":
		return a.clients(seg[1:])
	case "client-scopes":
		return a.clientScopes(seg[1:])
	case "default-default-client-scopes":
		return a.realmDefaultScopes(seg[1:], &a.r.defaultDefaultScopes)
	case "default-optional-client-scopes":
		return a.realmDefaultScopes(seg[1:], &a.r.defaultOptionalScopes)
	case "groups":
		return a.groups(seg[1:])
	case "attack-detection":
		return a.attackDetection(seg[1:])
	case "sessions":
		if len(seg) == 2 && a.method() == http.MethodDelete {
			if err := a.need("manage-users"); err != nil {
				return err
			}
			delete(a.r.sessions, seg[1])
			return a.noContent()
		}
	}
	return errNoResource
}

// realmResource is RealmAdminResource GET/PUT/DELETE.
func (a *adminRequest) realmResource() error {
	switch a.method() {
	case http.MethodGet:
		if err := a.need("view-realm"); err != nil {
			return err
		}
		return a.json(http.StatusOK, a.s.realmToRep(a.r))
	case http.MethodPut:
		if err := a.need("manage-realm"); err != nil {
			return err
		}
		var rep realmRep
		if err := decodeBody(a.req, &rep); err != nil {
			return err
		}
		r := a.r
		if rep.DisplayName != "" {
			r.displayName = rep.DisplayName
		}
		r.enabled = boolOr(rep.Enabled, r.enabled)
		r.accessTokenLifespan = intOr(rep.AccessTokenLifespan, r.accessTokenLifespan)
		r.ssoSessionIdleTimeout = intOr(rep.SsoSessionIdleTimeout, r.ssoSessionIdleTimeout)
		r.ssoSessionMaxLifespan = intOr(rep.SsoSessionMaxLifespan, r.ssoSessionMaxLifespan)
		r.revokeRefreshToken = boolOr(rep.RevokeRefreshToken, r.revokeRefreshToken)
		r.refreshTokenMaxReuse = intOr(rep.RefreshTokenMaxReuse, r.refreshTokenMaxReuse)
		r.loginWithEmailAllowed = boolOr(rep.LoginWithEmailAllowed, r.loginWithEmailAllowed)
		r.duplicateEmailsAllowed = boolOr(rep.DuplicateEmailsAllowed, r.duplicateEmailsAllowed)
		r.editUsernameAllowed = boolOr(rep.EditUsernameAllowed, r.editUsernameAllowed)
		if rep.NotBefore != nil {
			r.notBefore = *rep.NotBefore
		}
		applyBruteForce(&r.bruteForce, &rep, false)
		return a.noContent()
	case http.MethodDelete:
		if !a.caller.superuser {
			return errForbidden
		}
		delete(a.s.realms, a.r.name)
		return a.noContent()
	}
	return errBadMethod
}

func (s *Server) realmToRep(r *realm) map[string]any {
	b := r.bruteForce
	var dds, dos []string
	for _, id := range r.defaultDefaultScopes {
		if sc := r.scopes[id]; sc != nil {
			dds = append(dds, sc.name)
		}
	}
	for _, id := range r.defaultOptionalScopes {
		if sc := r.scopes[id]; sc != nil {
			dos = append(dos, sc.name)
		}
	}
	out := map[string]any{
		"id": r.id, "realm": r.name, "displayName": r.displayName, "enabled": r.enabled,
		"notBefore": r.notBefore, "revokeRefreshToken": r.revokeRefreshToken,
		"refreshTokenMaxReuse": r.refreshTokenMaxReuse, "accessTokenLifespan": r.accessTokenLifespan,
		"ssoSessionIdleTimeout": r.ssoSessionIdleTimeout, "ssoSessionMaxLifespan": r.ssoSessionMaxLifespan,
		"loginWithEmailAllowed": r.loginWithEmailAllowed, "duplicateEmailsAllowed": r.duplicateEmailsAllowed,
		"editUsernameAllowed": r.editUsernameAllowed,
		"bruteForceProtected": b.Protected, "permanentLockout": b.PermanentLockout,
		"maxTemporaryLockouts": b.MaxTemporaryLockouts, "bruteForceStrategy": b.Strategy,
		"failureFactor": b.FailureFactor, "waitIncrementSeconds": b.WaitIncrementSeconds,
		"maxFailureWaitSeconds": b.MaxFailureWaitSeconds, "minimumQuickLoginWaitSeconds": b.MinimumQuickLoginWaitSeconds,
		"quickLoginCheckMilliSeconds": b.QuickLoginCheckMilliSeconds, "maxDeltaTimeSeconds": b.MaxDeltaTimeSeconds,
		"defaultDefaultClientScopes": dds, "defaultOptionalClientScopes": dos,
	}
	if dr := r.roles[r.defaultRole]; dr != nil {
		out["defaultRole"] = s.roleToRep(r, dr)
	}
	return out
}

func (a *adminRequest) query(k string) string { return a.req.URL.Query().Get(k) }

func (a *adminRequest) intQuery(k string, def int) int {
	v := a.query(k)
	if v == "" {
		return def
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return def
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func page[T any](list []T, first, max int) []T {
	if first >= len(list) {
		return []T{}
	}
	list = list[first:]
	if max >= 0 && max < len(list) {
		list = list[:max]
	}
	return list
}

// realmDefaultScopes is RealmAdminResource default-default-client-scopes /
// default-optional-client-scopes.
func (a *adminRequest) realmDefaultScopes(seg []string, list *[]string) error {
	r := a.r
	switch {
	case len(seg) == 0 && a.method() == http.MethodGet:
		if err := a.need("view-realm"); err != nil {
			return err
		}
		out := []any{}
		for _, id := range *list {
			if sc := r.scopes[id]; sc != nil {
				out = append(out, map[string]string{"id": sc.id, "name": sc.name})
			}
		}
		return a.json(http.StatusOK, out)
	case len(seg) == 1 && (a.method() == http.MethodPut || a.method() == http.MethodDelete):
		if err := a.need("manage-realm"); err != nil {
			return err
		}
		sc := r.scopes[seg[0]]
		if sc == nil {
			return errorBody(http.StatusNotFound, "Client scope not found")
		}
		if a.method() == http.MethodPut {
			*list = appendMissing(*list, sc.id)
		} else {
			*list = removeID(*list, sc.id)
		}
		return a.noContent()
	}
	return errNoResource
}

func removeID(list []string, id string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// attackDetection is AttackDetectionResource.
func (a *adminRequest) attackDetection(seg []string) error {
	if len(seg) < 2 || seg[0] != "brute-force" || seg[1] != "users" {
		return errNoResource
	}
	if len(seg) == 2 && a.method() == http.MethodDelete {
		if err := a.need("manage-users"); err != nil {
			return err
		}
		for _, u := range a.r.users {
			a.s.clearLockout(a.r, u)
		}
		return a.noContent()
	}
	if len(seg) != 3 {
		return errNoResource
	}
	u := a.r.users[seg[2]]
	switch a.method() {
	case http.MethodGet:
		if err := a.need("view-users"); err != nil {
			return err
		}
		if u == nil {
			return a.json(http.StatusOK, map[string]any{"numFailures": 0, "disabled": false, "lastIPFailure": "n/a", "lastFailure": 0})
		}
		return a.json(http.StatusOK, a.s.bruteForceStatus(a.r, u))
	case http.MethodDelete:
		if err := a.need("manage-users"); err != nil {
			return err
		}
		if u != nil {
			a.s.clearLockout(a.r, u)
		}
		return a.noContent()
	}
	return errBadMethod
}
