package keycloaktest

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
)

// Users: services/src/main/java/org/keycloak/services/resources/admin/UsersResource.java
// and UserResource.java, with the user-profile rules of
// services/src/main/java/org/keycloak/userprofile/DefaultUserProfile.java /
// DefaultAttributes.java.

var errUserNotFound = errorBody(http.StatusNotFound, "User not found")

func (s *Server) userToRep(r *realm, u *user, ctx upContext, brief bool) map[string]any {
	out := map[string]any{
		"id": u.id, "username": u.username, "enabled": u.enabled, "emailVerified": u.emailVerified,
		"createdTimestamp": u.created, "totp": false, "disableableCredentialTypes": []string{},
		"requiredActions": nonNil(u.requiredActions), "notBefore": u.notBefore,
	}
	if u.firstName != "" {
		out["firstName"] = u.firstName
	}
	if u.lastName != "" {
		out["lastName"] = u.lastName
	}
	if u.email != "" {
		out["email"] = u.email
	}
	if u.serviceAccountFor != "" {
		if c := r.clients[u.serviceAccountFor]; c != nil {
			out["serviceAccountClientId"] = c.clientID
		}
	}
	if !brief {
		if attrs := r.profile.visibleAttributes(u, ctx); len(attrs) > 0 {
			out["attributes"] = attrs
		}
	}
	out["access"] = map[string]bool{"manageGroupMembership": true, "view": true, "mapRoles": true,
		"impersonate": false, "manage": true}
	return out
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func (a *adminRequest) users(seg []string) error {
	r := a.r
	if len(seg) == 0 {
		switch a.method() {
		case http.MethodGet:
			if err := a.need("query-users"); err != nil {
				return err
			}
			list := a.searchUsers()
			brief := a.query("briefRepresentation") == "true"
			out := []any{}
			for _, u := range page(list, a.intQuery("first", 0), a.intQuery("max", 100)) {
				out = append(out, a.s.userToRep(r, u, contextAdmin, brief))
			}
			return a.json(http.StatusOK, out)
		case http.MethodPost:
			if err := a.need("manage-users"); err != nil {
				return err
			}
			return a.createUser()
		}
		return errBadMethod
	}
	switch seg[0] {
	case "count":
		if err := a.need("query-users"); err != nil {
			return err
		}
		return a.json(http.StatusOK, len(a.searchUsers()))
	case "profile":
		return a.userProfile(seg[1:])
	}
	u := r.users[seg[0]]
	if u == nil {
		// UsersResource.user: 404 only for callers who may query users.
		if a.caller.can("query-users") {
			return errUserNotFound
		}
		return errForbidden
	}
	if len(seg) == 1 {
		switch a.method() {
		case http.MethodGet:
			if err := a.need("view-users"); err != nil {
				return err
			}
			rep := a.s.userToRep(r, u, contextAdmin, false)
			if a.query("userProfileMetadata") == "true" {
				rep["userProfileMetadata"] = a.profileMetadata(contextAdmin)
			}
			return a.json(http.StatusOK, rep)
		case http.MethodPut:
			if err := a.need("manage-users"); err != nil {
				return err
			}
			if u == nil {
				return errUserNotFound
			}
			return a.updateUser(u)
		case http.MethodDelete:
			if err := a.need("manage-users"); err != nil {
				return err
			}
			if u == nil {
				return errUserNotFound
			}
			delete(r.users, u.id)
			delete(r.failures, u.id)
			for id, sess := range r.sessions {
				if sess.userID == u.id {
					delete(r.sessions, id)
				}
			}
			return a.noContent()
		}
		return errBadMethod
	}
	if err := a.need("view-users"); err != nil {
		return err
	}
	if u == nil {
		return errUserNotFound
	}
	switch seg[1] {
	case "reset-password":
		if a.method() != http.MethodPut {
			return errBadMethod
		}
		if err := a.need("manage-users"); err != nil {
			return err
		}
		var cred credentialRep
		if err := decodeBody(a.req, &cred); err != nil {
			return err
		}
		if cred.Value == "" {
			return errorMessage(http.StatusBadRequest, "Empty password")
		}
		pc, err := a.s.hashPassword(cred.Value)
		if err != nil {
			return err
		}
		u.password = pc
		if cred.Temporary != nil && *cred.Temporary {
			u.requiredActions = appendMissing(u.requiredActions, "UPDATE_PASSWORD")
		}
		return a.noContent()
	case "sessions":
		out := []any{}
		for _, sess := range a.sortedSessions(u) {
			clients := map[string]string{}
			for cid := range sess.clients {
				if c := r.clients[cid]; c != nil {
					clients[cid] = c.clientID
				}
			}
			out = append(out, map[string]any{"id": sess.id, "username": u.username, "userId": u.id,
				"ipAddress": sess.ip, "start": sess.started.UnixMilli(), "lastAccess": sess.lastAccess.UnixMilli(),
				"rememberMe": false, "clients": clients, "transientUser": false})
		}
		return a.json(http.StatusOK, out)
	case "logout":
		if a.method() != http.MethodPost {
			return errBadMethod
		}
		if err := a.need("manage-users"); err != nil {
			return err
		}
		for id, sess := range r.sessions {
			if sess.userID == u.id {
				delete(r.sessions, id)
			}
		}
		u.notBefore = a.s.now().Unix()
		return a.noContent()
	case "role-mappings":
		return a.roleMappings(u.roles, seg[2:], "manage-users")
	case "groups":
		return a.userGroups(u, seg[2:])
	}
	return errNoResource
}

func (a *adminRequest) sortedSessions(u *user) []*userSession {
	var out []*userSession
	now := a.s.now()
	for _, sess := range a.r.sessions {
		if sess.userID == u.id && !sess.serviceAccount {
			if live, _ := a.s.activeSession(a.r, sess.id, now); live != nil {
				out = append(out, sess)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].started.Before(out[j].started) })
	return out
}

// searchUsers is UsersResource.getUsers / getUsersCount: "search" (prefix,
// "*x*" infix, "\"x\"" exact, "id:" by id) over username, email, first
// and last name wins over the field parameters; the field parameters are
// infix unless exact=true and, unlike the other forms, also find
// service-account users (searchForUser includeServiceAccounts); q=key:value
// matches attributes exactly; results are ordered by username.
func (a *adminRequest) searchUsers() []*user {
	q := a.req.URL.Query()
	exact := q.Get("exact") == "true"
	match := func(field, want string) bool {
		if exact {
			return strings.EqualFold(field, want)
		}
		return strings.Contains(strings.ToLower(field), strings.ToLower(want))
	}
	_, hasSearch := q["search"]
	fieldParams := false
	for _, k := range []string{"username", "email", "firstName", "lastName"} {
		if _, ok := q[k]; ok && !hasSearch {
			fieldParams = true
		}
	}
	var out []*user
	for _, u := range a.r.sortedUsers() {
		if u.serviceAccountFor != "" && !fieldParams {
			continue
		}
		ok := true
		if hasSearch {
			ok = searchMatches(u, q.Get("search"))
		} else {
			for k, field := range map[string]string{"username": u.username, "email": u.email, "firstName": u.firstName, "lastName": u.lastName} {
				if v, present := q[k]; present && !match(field, v[0]) {
					ok = false
				}
			}
		}
		if v := q.Get("enabled"); v != "" && (v == "true") != u.enabled {
			ok = false
		}
		if v := q.Get("emailVerified"); v != "" && (v == "true") != u.emailVerified {
			ok = false
		}
		if v := q.Get("q"); v != "" {
			for _, pair := range strings.Fields(v) {
				k, val, _ := strings.Cut(pair, ":")
				if !slices.Contains(u.attributes[k], val) {
					ok = false
				}
			}
		}
		if ok {
			out = append(out, u)
		}
	}
	return out
}

func searchMatches(u *user, search string) bool {
	search = strings.TrimSpace(search)
	if search == "*" {
		return true
	}
	if strings.HasPrefix(search, "id:") {
		return u.id == strings.TrimSpace(search[3:])
	}
	var test func(string) bool
	switch {
	case len(search) >= 2 && strings.HasPrefix(search, `"`) && strings.HasSuffix(search, `"`):
		want := strings.ToLower(search[1 : len(search)-1])
		test = func(f string) bool { return strings.ToLower(f) == want }
	case strings.HasPrefix(search, "*"):
		want := strings.ToLower(strings.Trim(search, "*"))
		test = func(f string) bool { return strings.Contains(strings.ToLower(f), want) }
	default:
		want := strings.ToLower(strings.TrimSuffix(search, "*"))
		test = func(f string) bool { return strings.HasPrefix(strings.ToLower(f), want) }
	}
	return test(u.username) || test(u.email) || test(u.firstName) || test(u.lastName)
}

// requiredActionProviders are the built-in RequiredActionProvider ids;
// UserResource.updateUserFromRep keeps only those from requiredActions.
var requiredActionProviders = []string{"CONFIGURE_TOTP", "TERMS_AND_CONDITIONS", "UPDATE_PASSWORD",
	"UPDATE_PROFILE", "VERIFY_EMAIL", "VERIFY_PROFILE", "delete_account", "delete_credential",
	"update_user_locale", "webauthn-register", "webauthn-register-passwordless", "CONFIGURE_RECOVERY_AUTHN_CODES", "idp_link"}

func knownRequiredActions(in []string) []string {
	out := []string{}
	for _, a := range requiredActionProviders {
		if slices.Contains(in, a) {
			out = append(out, a)
		}
	}
	return out
}

func readOnlyError(name string) *apiError {
	return &apiError{status: http.StatusBadRequest, body: map[string]any{
		"field": name, "errorMessage": "error-user-attribute-read-only", "params": []string{name}}}
}

// applyAttributes writes non-root attributes under the user-profile rules
// for ctx. With replace set (attributes present in an admin PUT), editable
// attributes missing from in are removed. Undeclared attributes are dropped
// silently unless the unmanaged policy lets ctx edit them; service accounts
// take any attribute. Changing a declared attribute ctx may not edit is 400
// error-user-attribute-read-only.
func (s *Server) applyAttributes(r *realm, u *user, in map[string][]string, replace bool, ctx upContext) error {
	up := &r.profile
	editable := func(name string) (bool, bool) { // (editable, declared)
		if u.serviceAccountFor != "" {
			return true, up.attribute(name) != nil
		}
		if at := up.attribute(name); at != nil {
			return at.canEdit(ctx), true
		}
		return up.unmanagedEdit(ctx), false
	}
	for k, v := range in {
		if rootAttributes[k] {
			continue
		}
		ed, declared := editable(k)
		if !ed {
			if declared && !slices.Equal(v, u.attributes[k]) && !(len(v) == 0 && len(u.attributes[k]) == 0) {
				return readOnlyError(k)
			}
			continue
		}
		if at := up.attribute(k); at != nil && !at.Multivalued && len(v) > 1 {
			return &apiError{status: http.StatusBadRequest, body: map[string]any{
				"field": k, "errorMessage": "error-invalid-multivalued-size", "params": []any{k, 0, 1}}}
		}
	}
	if replace {
		for k := range u.attributes {
			if _, sent := in[k]; sent {
				continue
			}
			if ed, _ := editable(k); ed {
				delete(u.attributes, k)
			}
		}
	}
	for k, v := range in {
		if rootAttributes[k] {
			continue
		}
		if ed, _ := editable(k); !ed {
			continue
		}
		var vals []string
		for _, x := range v {
			if x != "" {
				vals = append(vals, x)
			}
		}
		if len(vals) == 0 {
			delete(u.attributes, k)
		} else {
			u.attributes[k] = vals
		}
	}
	return nil
}

// updateUser is UserResource.updateUser: attributes present means the whole
// attribute set (root fields included) is replaced; "enabled": true clears
// brute-force lockouts; requiredActions non-null replaces the list.
func (a *adminRequest) updateUser(u *user) error {
	r := a.r
	var rep userRep
	if err := decodeBody(a.req, &rep); err != nil {
		return err
	}
	replace := rep.Attributes != nil
	if rep.Username != nil && *rep.Username != "" && strings.ToLower(*rep.Username) != u.username {
		if !r.editUsernameAllowed {
			return readOnlyError("username")
		}
		if other := r.userByUsername(*rep.Username); other != nil && other != u {
			return errorMessage(http.StatusConflict, "User exists with same username")
		}
	}
	if rep.Email != nil && *rep.Email != "" && !r.duplicateEmailsAllowed {
		if other := r.userByEmail(*rep.Email); other != nil && other != u {
			return errorMessage(http.StatusConflict, "User exists with same email")
		}
	}
	// Root attributes: attributes present with a root field absent clears it
	// (UserResource.updateUserFromRep -> UserProfile.update(removeAttributes)).
	root := func(p *string, attrKey string, cur *string, lower bool) {
		v := ""
		set := false
		if p != nil {
			v, set = *p, true
		} else if vals, ok := rep.Attributes[attrKey]; ok {
			if len(vals) > 0 {
				v = vals[0]
			}
			set = true
		}
		if lower {
			v = strings.ToLower(v)
		}
		if set {
			*cur = v
		} else if replace {
			*cur = ""
		}
	}
	if err := a.s.applyAttributes(r, u, rep.Attributes, replace, contextAdmin); err != nil {
		return err
	}
	if rep.Username != nil && *rep.Username != "" {
		u.username = strings.ToLower(*rep.Username)
	}
	root(rep.FirstName, "firstName", &u.firstName, false)
	root(rep.LastName, "lastName", &u.lastName, false)
	root(rep.Email, "email", &u.email, true)
	if rep.Enabled != nil {
		// Only a disabled or temporarily locked user has its login failures
		// removed; a permanent lockout is cleaned up as well.
		if *rep.Enabled && (!u.enabled || a.s.bruteForceLocked(r, u, a.s.now())) {
			a.s.clearLockout(r, u)
		}
		u.enabled = *rep.Enabled
	}
	if rep.EmailVerified != nil {
		u.emailVerified = *rep.EmailVerified
	}
	if rep.RequiredActions != nil {
		u.requiredActions = knownRequiredActions(rep.RequiredActions)
	}
	return a.noContent()
}

// createUser is UsersResource.createUser.
func (a *adminRequest) createUser() error {
	r := a.r
	var rep userRep
	if err := decodeBody(a.req, &rep); err != nil {
		return err
	}
	if rep.Username == nil || strings.TrimSpace(*rep.Username) == "" {
		// UserResource.validateUserProfile maps Messages.MISSING_USERNAME.
		return errorMessage(http.StatusBadRequest, "User name is missing")
	}
	if r.userByUsername(*rep.Username) != nil {
		return errorMessage(http.StatusConflict, "User exists with same username")
	}
	if rep.Email != nil && *rep.Email != "" && !r.duplicateEmailsAllowed && r.userByEmail(*rep.Email) != nil {
		return errorMessage(http.StatusConflict, "User exists with same email")
	}
	u := &user{id: a.s.newID(), created: a.s.now().UnixMilli(), username: strings.ToLower(strings.TrimSpace(*rep.Username)),
		enabled: boolOr(rep.Enabled, false), emailVerified: boolOr(rep.EmailVerified, false),
		attributes: map[string][]string{}, roles: map[string]bool{}, groups: map[string]bool{},
		requiredActions: knownRequiredActions(rep.RequiredActions)}
	if rep.FirstName != nil {
		u.firstName = *rep.FirstName
	}
	if rep.LastName != nil {
		u.lastName = *rep.LastName
	}
	if rep.Email != nil {
		u.email = strings.ToLower(*rep.Email)
	}
	if err := a.s.applyAttributes(r, u, rep.Attributes, false, contextAdmin); err != nil {
		return err
	}
	for _, cred := range rep.Credentials {
		if cred.Type != "" && cred.Type != "password" {
			continue
		}
		pc, err := a.s.credentialFromRep(cred)
		if err != nil {
			return errorMessage(http.StatusBadRequest, err.Error())
		}
		u.password = pc
		if cred.Temporary != nil && *cred.Temporary {
			u.requiredActions = appendMissing(u.requiredActions, "UPDATE_PASSWORD")
		}
	}
	if r.defaultRole != "" {
		u.roles[r.defaultRole] = true
	}
	for _, path := range rep.Groups {
		found := false
		for _, g := range r.groups {
			if r.groupPath(g) == path {
				u.groups[g.id] = true
				found = true
			}
		}
		if !found {
			return errorMessage(http.StatusBadRequest, fmt.Sprintf("Group %s not found", path))
		}
	}
	r.users[u.id] = u
	return a.created("users/" + u.id)
}

// userProfile is UserProfileResource: GET for any admin role, PUT with manage-realm.
func (a *adminRequest) userProfile(seg []string) error {
	if len(seg) == 1 && seg[0] == "metadata" && a.method() == http.MethodGet {
		if err := a.need("any"); err != nil {
			return err
		}
		return a.json(http.StatusOK, a.profileMetadata(contextAdmin))
	}
	if len(seg) != 0 {
		return errNoResource
	}
	switch a.method() {
	case http.MethodGet:
		if err := a.need("any"); err != nil {
			return err
		}
		return a.json(http.StatusOK, a.r.profile)
	case http.MethodPut:
		if err := a.need("manage-realm"); err != nil {
			return err
		}
		raw, err := readAll(a.req)
		if err != nil {
			return err
		}
		up, err := parseUserProfile(raw)
		if err != nil {
			return errorMessage(http.StatusBadRequest, err.Error())
		}
		a.r.profile = up
		return a.json(http.StatusOK, up)
	}
	return errBadMethod
}

func (a *adminRequest) profileMetadata(ctx upContext) map[string]any {
	var attrs []any
	for _, at := range a.r.profile.Attributes {
		if !at.canView(ctx) && at.Name != "username" && at.Name != "email" {
			continue
		}
		required := at.Required != nil && (len(at.Required.Roles) == 0 || contains(at.Required.Roles, ctx.role()))
		attrs = append(attrs, map[string]any{"name": at.Name, "displayName": at.DisplayName,
			"required": required, "readOnly": !at.canEdit(ctx), "multivalued": at.Multivalued,
			"validators": at.Validations, "annotations": at.Annotations, "group": at.Group})
	}
	return map[string]any{"attributes": attrs, "groups": a.r.profile.Groups}
}
