package keycloaktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrRealmExists is returned by ImportRealm when a realm of that name is
// already present (Keycloak answers 409 to POST /admin/realms then).
var ErrRealmExists = errors.New("keycloaktest: realm already exists")

// ErrRealmNotFound is returned when an operation names an unknown realm.
var ErrRealmNotFound = errors.New("keycloaktest: realm not found")

// userProfileProvider is the component type under which `kc.sh export` writes
// the user profile configuration (DeclarativeUserProfileProvider).
const userProfileProvider = "org.keycloak.userprofile.UserProfileProvider"

func intOr(p *int, def int) int {
	if p != nil {
		return *p
	}
	return def
}

func boolOr(p *bool, def bool) bool {
	if p != nil {
		return *p
	}
	return def
}

// buildRealm turns a realm representation into the model, the way
// RealmManager.importRealm and RepresentationToModel do, including the parts
// Keycloak adds itself: built-in clients, realm-management and account roles,
// the default role, default client scopes and the 18/25 migrations (acr, basic).
func (s *Server) buildRealm(rep *realmRep) (*realm, error) {
	if rep.Realm == "" {
		return nil, errors.New("realm name is missing")
	}
	r := &realm{
		id:                     rep.ID,
		name:                   rep.Realm,
		displayName:            rep.DisplayName,
		enabled:                boolOr(rep.Enabled, true),
		accessTokenLifespan:    intOr(rep.AccessTokenLifespan, 300),
		ssoSessionIdleTimeout:  intOr(rep.SsoSessionIdleTimeout, 1800),
		ssoSessionMaxLifespan:  intOr(rep.SsoSessionMaxLifespan, 36000),
		revokeRefreshToken:     boolOr(rep.RevokeRefreshToken, false),
		refreshTokenMaxReuse:   intOr(rep.RefreshTokenMaxReuse, 0),
		loginWithEmailAllowed:  boolOr(rep.LoginWithEmailAllowed, true),
		duplicateEmailsAllowed: boolOr(rep.DuplicateEmailsAllowed, false),
		editUsernameAllowed:    boolOr(rep.EditUsernameAllowed, false),
		verifyProfileEnabled:   true,
		users:                  map[string]*user{},
		clients:                map[string]*client{},
		roles:                  map[string]*role{},
		groups:                 map[string]*group{},
		scopes:                 map[string]*clientScope{},
		sessions:               map[string]*userSession{},
		failures:               map[string]*loginFailure{},
		revoked:                map[string]int64{},
		attributes:             map[string]string{},
	}
	if r.id == "" {
		r.id = s.newID()
	}
	if rep.NotBefore != nil {
		r.notBefore = *rep.NotBefore
	}
	applyBruteForce(&r.bruteForce, rep, true)
	for k, v := range rep.Attributes {
		var str string
		if json.Unmarshal(v, &str) == nil {
			r.attributes[k] = str
		}
	}
	for _, ra := range rep.RequiredActions {
		if ra.Alias == "VERIFY_PROFILE" {
			r.verifyProfileEnabled = ra.Enabled
		}
	}

	// Client scopes: an import without the section gets the built-in ones
	// (RealmManager.importRealm -> DefaultClientScopes.createDefaultClientScopes).
	scopeReps := rep.ClientScopes
	if scopeReps == nil {
		scopeReps = builtinClientScopes()
	}
	for i := range scopeReps {
		s.addScope(r, &scopeReps[i])
	}
	if rep.ClientScopes == nil {
		for _, n := range defaultClientScopeNames {
			r.defaultDefaultScopes = append(r.defaultDefaultScopes, r.scopeByName(n).id)
		}
		for _, n := range optionalClientScopeNames {
			r.defaultOptionalScopes = append(r.defaultOptionalScopes, r.scopeByName(n).id)
		}
	} else {
		for _, n := range rep.DefaultDefaultClientScopes {
			if sc := r.scopeByName(n); sc != nil {
				r.defaultDefaultScopes = append(r.defaultDefaultScopes, sc.id)
			}
		}
		for _, n := range rep.DefaultOptionalClientScopes {
			if sc := r.scopeByName(n); sc != nil {
				r.defaultOptionalScopes = append(r.defaultOptionalScopes, sc.id)
			}
		}
	}
	// MigrateTo18_0_0 / MigrateTo25_0_0: realms exported by older versions
	// gain the acr and basic scopes as default scopes of the realm and of
	// every OIDC client.
	var migrated []string
	for _, mk := range []func() clientScopeRep{acrScope, basicScope} {
		sr := mk()
		if r.scopeByName(sr.Name) == nil {
			sc := s.addScope(r, &sr)
			r.defaultDefaultScopes = append(r.defaultDefaultScopes, sc.id)
			migrated = append(migrated, sc.id)
		}
	}

	// Realm roles.
	if rep.Roles != nil {
		for _, rr := range rep.Roles.Realm {
			s.addRole(r, rr, "")
		}
	}
	// Clients, then the built-in ones that are missing.
	clientReps := append([]clientRep(nil), rep.Clients...)
	for _, bc := range builtinClients(r.name) {
		found := false
		for _, c := range clientReps {
			if c.ClientID == bc.ClientID {
				found = true
				break
			}
		}
		if !found {
			clientReps = append(clientReps, bc)
		}
	}
	for i := range clientReps {
		c, err := s.addClient(r, &clientReps[i])
		if err != nil {
			return nil, err
		}
		if c.protocol == "openid-connect" {
			c.defaultScopes = appendMissing(c.defaultScopes, migrated...)
		}
	}
	if rep.Roles != nil {
		for cid, roles := range rep.Roles.Client {
			c := r.clientByClientID(cid)
			if c == nil {
				return nil, fmt.Errorf("roles for unknown client %q", cid)
			}
			for _, rr := range roles {
				s.addRole(r, rr, c.id)
			}
		}
	}
	s.ensureBuiltinRoles(r)
	// Composites need every role to exist first.
	if rep.Roles != nil {
		for _, rr := range rep.Roles.Realm {
			s.setComposites(r, r.realmRole(rr.Name), rr.Composites)
		}
		for cid, roles := range rep.Roles.Client {
			c := r.clientByClientID(cid)
			for _, rr := range roles {
				s.setComposites(r, r.clientRole(c.id, rr.Name), rr.Composites)
			}
		}
	}
	s.ensureDefaultRole(r, rep)

	for i := range rep.Groups {
		s.addGroup(r, &rep.Groups[i], "")
	}
	for i := range rep.Users {
		if _, err := s.importUser(r, &rep.Users[i]); err != nil {
			return nil, err
		}
	}

	r.profile = defaultUserProfile()
	for _, comp := range rep.Components[userProfileProvider] {
		if cfg := comp.Config["kc.user.profile.config"]; len(cfg) > 0 {
			up, err := parseUserProfile([]byte(cfg[0]))
			if err != nil {
				return nil, fmt.Errorf("user profile config: %w", err)
			}
			r.profile = up
		}
	}
	if err := s.generateKeys(r); err != nil {
		return nil, err
	}
	return r, nil
}

func appendMissing(list []string, ids ...string) []string {
	for _, id := range ids {
		found := false
		for _, x := range list {
			if x == id {
				found = true
				break
			}
		}
		if !found {
			list = append(list, id)
		}
	}
	return list
}

func applyBruteForce(b *bruteForceSettings, rep *realmRep, defaults bool) {
	if defaults {
		// RealmRepresentation defaults / RealmAdapter getters.
		*b = bruteForceSettings{FailureFactor: 30, WaitIncrementSeconds: 60, MaxFailureWaitSeconds: 900,
			MinimumQuickLoginWaitSeconds: 60, QuickLoginCheckMilliSeconds: 1000, MaxDeltaTimeSeconds: 43200,
			Strategy: "MULTIPLE"}
	}
	b.Protected = boolOr(rep.BruteForceProtected, b.Protected)
	b.PermanentLockout = boolOr(rep.PermanentLockout, b.PermanentLockout)
	b.MaxTemporaryLockouts = intOr(rep.MaxTemporaryLockouts, b.MaxTemporaryLockouts)
	if rep.BruteForceStrategy != nil {
		b.Strategy = *rep.BruteForceStrategy
	}
	b.FailureFactor = intOr(rep.FailureFactor, b.FailureFactor)
	b.WaitIncrementSeconds = intOr(rep.WaitIncrementSeconds, b.WaitIncrementSeconds)
	b.MaxFailureWaitSeconds = intOr(rep.MaxFailureWaitSeconds, b.MaxFailureWaitSeconds)
	b.MinimumQuickLoginWaitSeconds = intOr(rep.MinimumQuickLoginWaitSeconds, b.MinimumQuickLoginWaitSeconds)
	if rep.QuickLoginCheckMilliSeconds != nil {
		b.QuickLoginCheckMilliSeconds = *rep.QuickLoginCheckMilliSeconds
	}
	b.MaxDeltaTimeSeconds = intOr(rep.MaxDeltaTimeSeconds, b.MaxDeltaTimeSeconds)
	if b.FailureFactor <= 0 {
		b.FailureFactor = 1
	}
}

func (s *Server) addScope(r *realm, rep *clientScopeRep) *clientScope {
	sc := &clientScope{id: rep.ID, name: rep.Name, description: rep.Description, protocol: rep.Protocol,
		attributes: map[string]string{}}
	if sc.id == "" {
		sc.id = s.newID()
	}
	if sc.protocol == "" {
		sc.protocol = "openid-connect"
	}
	for k, v := range rep.Attributes {
		sc.attributes[k] = v
	}
	for _, m := range rep.ProtocolMappers {
		sc.mappers = append(sc.mappers, s.newMapper(m))
	}
	r.scopes[sc.id] = sc
	return sc
}

func (s *Server) newMapper(m mapperRep) *protocolMapper {
	pm := &protocolMapper{id: m.ID, name: m.Name, protocol: m.Protocol, mapperType: m.ProtocolMapper,
		consentRequired: m.ConsentRequired, config: map[string]string{}}
	if pm.id == "" {
		pm.id = s.newID()
	}
	if pm.protocol == "" {
		pm.protocol = "openid-connect"
	}
	for k, v := range m.Config {
		pm.config[k] = v
	}
	return pm
}

func (s *Server) addRole(r *realm, rep roleRep, clientUUID string) *role {
	ro := &role{id: rep.ID, name: rep.Name, description: rep.Description, clientRole: clientUUID != "",
		container: clientUUID, composites: map[string]bool{}, attributes: map[string][]string{}}
	if ro.id == "" || r.roles[ro.id] != nil {
		ro.id = s.newID()
	}
	if clientUUID == "" {
		ro.container = r.id
	}
	for k, v := range rep.Attributes {
		ro.attributes[k] = v
	}
	r.roles[ro.id] = ro
	return ro
}

func (s *Server) setComposites(r *realm, ro *role, comp *compositesRep) {
	if ro == nil || comp == nil {
		return
	}
	for _, n := range comp.Realm {
		if c := r.realmRole(n); c != nil {
			ro.composites[c.id] = true
		}
	}
	for cid, names := range comp.Client {
		c := r.clientByClientID(cid)
		if c == nil {
			continue
		}
		for _, n := range names {
			if cr := r.clientRole(c.id, n); cr != nil {
				ro.composites[cr.id] = true
			}
		}
	}
}

// ensureBuiltinRoles creates the realm-management and account client roles
// and offline_access / uma_authorization when an import lacks them
// (RealmManager.setupRealmAdminManagement, setupAccountManagement, setupOfflineTokens).
func (s *Server) ensureBuiltinRoles(r *realm) {
	add := func(clientID string, defs []struct {
		name       string
		composites []string
	}) {
		c := r.clientByClientID(clientID)
		if c == nil {
			return
		}
		for _, d := range defs {
			if r.clientRole(c.id, d.name) == nil {
				s.addRole(r, roleRep{Name: d.name, Description: "${role_" + d.name + "}"}, c.id)
			}
		}
		for _, d := range defs {
			ro := r.clientRole(c.id, d.name)
			for _, cn := range d.composites {
				if cr := r.clientRole(c.id, cn); cr != nil {
					ro.composites[cr.id] = true
				}
			}
		}
	}
	add(realmManagementClientID, realmManagementRoles)
	add(accountClientID, accountRoles)
	for _, n := range []string{"offline_access", "uma_authorization"} {
		if r.realmRole(n) == nil {
			s.addRole(r, roleRep{Name: n, Description: "${role_" + n + "}"}, "")
		}
	}
}

// ensureDefaultRole sets up default-roles-{realm} (MigrateTo13_0_0 for old
// exports with defaultRoles, RealmManager.setupDefaultRole for new realms).
func (s *Server) ensureDefaultRole(r *realm, rep *realmRep) {
	name := "default-roles-" + strings.ToLower(r.name)
	if rep.DefaultRole != nil && rep.DefaultRole.Name != "" {
		name = rep.DefaultRole.Name
	}
	dr := r.realmRole(name)
	if dr == nil {
		dr = s.addRole(r, roleRep{Name: name, Description: "${role_default-roles}"}, "")
		if rep.DefaultRoles != nil {
			for _, n := range rep.DefaultRoles {
				if ro := r.realmRole(n); ro != nil {
					dr.composites[ro.id] = true
				}
			}
		} else {
			for _, n := range []string{"offline_access", "uma_authorization"} {
				dr.composites[r.realmRole(n).id] = true
			}
		}
		if acc := r.clientByClientID(accountClientID); acc != nil {
			for _, n := range []string{"view-profile", "manage-account"} {
				if ro := r.clientRole(acc.id, n); ro != nil {
					dr.composites[ro.id] = true
				}
			}
		}
	}
	r.defaultRole = dr.id
}

func (s *Server) addClient(r *realm, rep *clientRep) (*client, error) {
	if rep.ClientID == "" {
		return nil, errors.New("client without clientId")
	}
	if r.clientByClientID(rep.ClientID) != nil {
		return nil, fmt.Errorf("client %s: %w", rep.ClientID, errConflict)
	}
	c := &client{id: rep.ID, attributes: map[string]string{}}
	if c.id == "" {
		c.id = s.newID()
	}
	s.applyClientRep(r, c, rep, true)
	r.clients[c.id] = c
	if c.serviceAccounts && !c.publicClient {
		s.ensureServiceAccount(r, c)
	}
	return c, nil
}

// applyClientRep copies a client representation into the model. With
// create set, absent fields take ClientRepresentation defaults.
func (s *Server) applyClientRep(r *realm, c *client, rep *clientRep, create bool) {
	c.clientID = rep.ClientID
	if create || rep.Name != "" {
		c.name = rep.Name
	}
	if create || rep.Description != "" {
		c.description = rep.Description
	}
	c.enabled = boolOr(rep.Enabled, create || c.enabled)
	c.publicClient = boolOr(rep.PublicClient, !create && c.publicClient)
	c.bearerOnly = boolOr(rep.BearerOnly, !create && c.bearerOnly)
	c.standardFlow = boolOr(rep.StandardFlowEnabled, create || c.standardFlow)
	c.implicitFlow = boolOr(rep.ImplicitFlowEnabled, !create && c.implicitFlow)
	c.directAccessGrants = boolOr(rep.DirectAccessGrantsEnabled, !create && c.directAccessGrants)
	c.serviceAccounts = boolOr(rep.ServiceAccountsEnabled, !create && c.serviceAccounts)
	c.consentRequired = boolOr(rep.ConsentRequired, !create && c.consentRequired)
	c.fullScopeAllowed = boolOr(rep.FullScopeAllowed, create || c.fullScopeAllowed)
	if rep.Protocol != "" {
		c.protocol = rep.Protocol
	} else if create {
		c.protocol = "openid-connect"
	}
	if rep.RootURL != "" || create {
		c.rootURL = rep.RootURL
	}
	if rep.BaseURL != "" || create {
		c.baseURL = rep.BaseURL
	}
	if rep.RedirectURIs != nil || create {
		c.redirectURIs = append([]string(nil), rep.RedirectURIs...)
	}
	if rep.WebOrigins != nil || create {
		c.webOrigins = append([]string(nil), rep.WebOrigins...)
	}
	if rep.ClientAuthenticatorType != "" {
		c.authenticatorType = rep.ClientAuthenticatorType
	} else if create {
		c.authenticatorType = "client-secret"
	}
	if rep.Secret != "" {
		c.secret = rep.Secret
	} else if create && !c.publicClient {
		// ClientManager.createClient generates a secret for confidential clients.
		c.secret = s.newSecret()
	}
	for k, v := range rep.Attributes {
		c.attributes[k] = v
	}
	if create {
		for _, m := range rep.ProtocolMappers {
			c.mappers = append(c.mappers, s.newMapper(m))
		}
		// RepresentationToModel.createClient: without defaultClientScopes the
		// realm defaults apply (bearer-only clients included).
		if rep.DefaultClientScopes == nil {
			c.defaultScopes = append([]string(nil), r.defaultDefaultScopes...)
		} else {
			for _, n := range rep.DefaultClientScopes {
				if sc := r.scopeByName(n); sc != nil {
					c.defaultScopes = append(c.defaultScopes, sc.id)
				}
			}
		}
		if rep.OptionalClientScopes == nil {
			c.optionalScopes = append([]string(nil), r.defaultOptionalScopes...)
		} else {
			for _, n := range rep.OptionalClientScopes {
				if sc := r.scopeByName(n); sc != nil {
					c.optionalScopes = append(c.optionalScopes, sc.id)
				}
			}
		}
	}
}

// serviceAccountMappers are the session-note mappers ClientManager.enableServiceAccount
// adds to a client (ServiceAccountConstants: client_id, clientHost, clientAddress).
func serviceAccountMappers() []mapperRep {
	note := func(name, note string) mapperRep {
		return boolMapper(name, "oidc-usersessionmodel-note-mapper", map[string]string{
			"user.session.note": note, "claim.name": note, "jsonType.label": "String",
			"id.token.claim": "true", "access.token.claim": "true", "introspection.token.claim": "true"})
	}
	return []mapperRep{note("Client ID", "client_id"), note("Client Host", "clientHost"), note("Client IP Address", "clientAddress")}
}

// ensureServiceAccount creates the service-account user of a client when it
// has none, with the service-account mappers (ClientManager.enableServiceAccount).
func (s *Server) ensureServiceAccount(r *realm, c *client) *user {
	for _, m := range serviceAccountMappers() {
		found := false
		for _, have := range c.mappers {
			if have.name == m.Name || (have.mapperType == m.ProtocolMapper && have.config["user.session.note"] == m.Config["user.session.note"]) {
				found = true
			}
		}
		if !found {
			c.mappers = append(c.mappers, s.newMapper(m))
		}
	}
	for _, u := range r.users {
		if u.serviceAccountFor == c.id {
			return u
		}
	}
	u := &user{id: s.newID(), created: s.now().UnixMilli(), username: "service-account-" + strings.ToLower(c.clientID),
		enabled: true, attributes: map[string][]string{}, roles: map[string]bool{}, groups: map[string]bool{},
		serviceAccountFor: c.id}
	if r.defaultRole != "" {
		u.roles[r.defaultRole] = true
	}
	r.users[u.id] = u
	return u
}

func (s *Server) addGroup(r *realm, rep *groupRep, parent string) {
	g := &group{id: rep.ID, name: rep.Name, parent: parent, roles: map[string]bool{}, attributes: map[string][]string{}}
	if g.id == "" {
		g.id = s.newID()
	}
	for k, v := range rep.Attributes {
		g.attributes[k] = v
	}
	for _, n := range rep.RealmRoles {
		if ro := r.realmRole(n); ro != nil {
			g.roles[ro.id] = true
		}
	}
	for cid, names := range rep.ClientRoles {
		if c := r.clientByClientID(cid); c != nil {
			for _, n := range names {
				if ro := r.clientRole(c.id, n); ro != nil {
					g.roles[ro.id] = true
				}
			}
		}
	}
	r.groups[g.id] = g
	for i := range rep.SubGroups {
		s.addGroup(r, &rep.SubGroups[i], g.id)
	}
}

// importUser creates a user from an export entry (RepresentationToModel.createUser):
// missing roles are created on the fly, credentials keep their hashes.
func (s *Server) importUser(r *realm, rep *userRep) (*user, error) {
	if rep.Username == nil || *rep.Username == "" {
		return nil, errors.New("user without username")
	}
	u := &user{id: rep.ID, created: rep.CreatedTimestamp, username: strings.ToLower(*rep.Username),
		enabled: boolOr(rep.Enabled, false), emailVerified: boolOr(rep.EmailVerified, false),
		attributes: map[string][]string{}, roles: map[string]bool{}, groups: map[string]bool{}}
	if u.id == "" {
		u.id = s.newID()
	}
	if u.created == 0 {
		u.created = s.now().UnixMilli()
	}
	if rep.FirstName != nil {
		u.firstName = *rep.FirstName
	}
	if rep.LastName != nil {
		u.lastName = *rep.LastName
	}
	if rep.Email != nil {
		u.email = strings.ToLower(*rep.Email)
	}
	if rep.NotBefore != nil {
		u.notBefore = *rep.NotBefore
	}
	for k, v := range rep.Attributes {
		u.attributes[k] = append([]string(nil), v...)
	}
	u.requiredActions = append([]string(nil), rep.RequiredActions...)
	for _, n := range rep.RealmRoles {
		ro := r.realmRole(n)
		if ro == nil {
			ro = s.addRole(r, roleRep{Name: n}, "")
		}
		u.roles[ro.id] = true
	}
	for cid, names := range rep.ClientRoles {
		c := r.clientByClientID(cid)
		if c == nil {
			return nil, fmt.Errorf("user %s: role mapping for unknown client %q", u.username, cid)
		}
		for _, n := range names {
			ro := r.clientRole(c.id, n)
			if ro == nil {
				ro = s.addRole(r, roleRep{Name: n}, c.id)
			}
			u.roles[ro.id] = true
		}
	}
	for _, path := range rep.Groups {
		for _, g := range r.groups {
			if r.groupPath(g) == path || g.name == path {
				u.groups[g.id] = true
			}
		}
	}
	for _, cred := range rep.Credentials {
		if cred.Type != "password" && cred.Type != "" {
			continue
		}
		pc, err := s.credentialFromRep(cred)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", u.username, err)
		}
		u.password = pc
		if cred.Temporary != nil && *cred.Temporary {
			u.requiredActions = appendMissing(u.requiredActions, "UPDATE_PASSWORD")
		}
	}
	if rep.ServiceAccountClientID != "" {
		c := r.clientByClientID(rep.ServiceAccountClientID)
		if c == nil {
			return nil, fmt.Errorf("service account %s: unknown client %q", u.username, rep.ServiceAccountClientID)
		}
		// Replace the placeholder created with the client.
		for id, other := range r.users {
			if other.serviceAccountFor == c.id {
				delete(r.users, id)
			}
		}
		u.serviceAccountFor = c.id
	}
	if r.userByUsername(u.username) != nil {
		return nil, fmt.Errorf("user %s: %w", u.username, errConflict)
	}
	r.users[u.id] = u
	return u, nil
}
