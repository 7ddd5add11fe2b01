package keycloaktest

import (
	"crypto/rsa"
	"sort"
	"strings"
	"time"
)

// The in-memory model mirrors Keycloak's storage model (org.keycloak.models.*Model):
// a realm owns users, clients, roles, groups, client scopes, sessions and login
// failures. Every field is guarded by Server.mu.

type realm struct {
	id          string
	name        string
	displayName string
	enabled     bool

	accessTokenLifespan   int // seconds
	ssoSessionIdleTimeout int
	ssoSessionMaxLifespan int
	revokeRefreshToken    bool
	refreshTokenMaxReuse  int
	notBefore             int64

	loginWithEmailAllowed  bool
	duplicateEmailsAllowed bool
	editUsernameAllowed    bool
	verifyProfileEnabled   bool

	bruteForce bruteForceSettings

	users       map[string]*user // by id
	clients     map[string]*client
	roles       map[string]*role // realm and client roles by id
	groups      map[string]*group
	scopes      map[string]*clientScope
	defaultRole string // role id of default-roles-{realm}

	defaultDefaultScopes  []string // scope ids
	defaultOptionalScopes []string

	profile upConfig

	keys     []*signingKey // keys[0] is the active signing key
	encKey   *signingKey
	hmacKey  []byte
	sessions map[string]*userSession
	failures map[string]*loginFailure // by user id
	revoked  map[string]int64         // revoked access-token jti -> exp

	attributes map[string]string
}

type bruteForceSettings struct {
	Protected                    bool
	PermanentLockout             bool
	MaxTemporaryLockouts         int
	Strategy                     string
	FailureFactor                int
	WaitIncrementSeconds         int
	MaxFailureWaitSeconds        int
	MinimumQuickLoginWaitSeconds int
	QuickLoginCheckMilliSeconds  int64
	MaxDeltaTimeSeconds          int
}

type signingKey struct {
	kid  string
	priv *rsa.PrivateKey
	cert []byte // DER self-signed certificate, as Keycloak's generated keys carry
}

type user struct {
	id                string
	created           int64 // ms
	username          string
	email             string
	firstName         string
	lastName          string
	emailVerified     bool
	enabled           bool
	attributes        map[string][]string // non-root attributes, including undeclared ones
	requiredActions   []string
	roles             map[string]bool // directly mapped role ids
	groups            map[string]bool
	serviceAccountFor string // client uuid
	password          *passwordCredential
	notBefore         int64
	disabledReason    string
}

type passwordCredential struct {
	id         string
	created    int64
	algorithm  string // pbkdf2-sha256, pbkdf2-sha512, pbkdf2, argon2
	iterations int
	salt       []byte
	hash       []byte
	params     map[string][]string
}

type client struct {
	id                 string
	clientID           string
	name               string
	description        string
	enabled            bool
	secret             string
	publicClient       bool
	bearerOnly         bool
	standardFlow       bool
	implicitFlow       bool
	directAccessGrants bool
	serviceAccounts    bool
	consentRequired    bool
	fullScopeAllowed   bool
	protocol           string
	rootURL            string
	baseURL            string
	redirectURIs       []string
	webOrigins         []string
	attributes         map[string]string
	defaultScopes      []string // scope ids
	optionalScopes     []string
	mappers            []*protocolMapper
	authenticatorType  string
}

type role struct {
	id          string
	name        string
	description string
	clientRole  bool
	container   string // realm id or client uuid
	composites  map[string]bool
	attributes  map[string][]string
}

type group struct {
	id         string
	name       string
	parent     string
	roles      map[string]bool
	attributes map[string][]string
}

type clientScope struct {
	id          string
	name        string
	description string
	protocol    string
	attributes  map[string]string
	mappers     []*protocolMapper
}

type protocolMapper struct {
	id              string
	name            string
	protocol        string
	mapperType      string
	consentRequired bool
	config          map[string]string
}

type userSession struct {
	id         string
	userID     string
	started    time.Time
	lastAccess time.Time
	authTime   int64
	ip         string
	acr        string
	clients    map[string]*clientSession // by client uuid
	// serviceAccount marks a client_credentials session.
	serviceAccount bool
}

type clientSession struct {
	clientID      string // uuid
	started       time.Time
	timestamp     int64  // seconds; set at login and at every refresh
	currentToken  string // jti of the refresh token last presented (revokeRefreshToken)
	tokenUseCount int
}

type loginFailure struct {
	numFailures       int
	numTempLockouts   int
	lastFailure       int64 // ms
	lastIP            string
	failedNotBeforeMs int64
}

func (r *realm) userByUsername(name string) *user {
	name = strings.ToLower(name)
	for _, u := range r.users {
		if u.username == name {
			return u
		}
	}
	return nil
}

func (r *realm) userByEmail(email string) *user {
	if email == "" {
		return nil
	}
	for _, u := range r.users {
		if strings.EqualFold(u.email, email) {
			return u
		}
	}
	return nil
}

func (r *realm) clientByClientID(id string) *client {
	for _, c := range r.clients {
		if c.clientID == id {
			return c
		}
	}
	return nil
}

func (r *realm) scopeByName(name string) *clientScope {
	for _, s := range r.scopes {
		if s.name == name {
			return s
		}
	}
	return nil
}

// realmRole finds a realm-level role by name.
func (r *realm) realmRole(name string) *role {
	for _, ro := range r.roles {
		if !ro.clientRole && ro.name == name {
			return ro
		}
	}
	return nil
}

// clientRole finds a role of the client with the given uuid.
func (r *realm) clientRole(clientUUID, name string) *role {
	for _, ro := range r.roles {
		if ro.clientRole && ro.container == clientUUID && ro.name == name {
			return ro
		}
	}
	return nil
}

func (r *realm) sortedUsers() []*user {
	out := make([]*user, 0, len(r.users))
	for _, u := range r.users {
		out = append(out, u)
	}
	// Keycloak's JPA user search orders by username (JpaUserProvider.searchForUserStream).
	sort.Slice(out, func(i, j int) bool { return out[i].username < out[j].username })
	return out
}

func (r *realm) sortedRoles(clientUUID string) []*role {
	var out []*role
	for _, ro := range r.roles {
		if (clientUUID == "" && !ro.clientRole) || (clientUUID != "" && ro.clientRole && ro.container == clientUUID) {
			out = append(out, ro)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (r *realm) sortedClients() []*client {
	out := make([]*client, 0, len(r.clients))
	for _, c := range r.clients {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].clientID < out[j].clientID })
	return out
}

func (r *realm) sortedScopes() []*clientScope {
	out := make([]*clientScope, 0, len(r.scopes))
	for _, s := range r.scopes {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// expandRoles returns the ids of the given roles and of every role they
// contain through composites (RoleUtils.expandCompositeRoles).
func (r *realm) expandRoles(ids map[string]bool) map[string]bool {
	out := map[string]bool{}
	var walk func(id string)
	walk = func(id string) {
		if out[id] {
			return
		}
		ro := r.roles[id]
		if ro == nil {
			return
		}
		out[id] = true
		for c := range ro.composites {
			walk(c)
		}
	}
	for id := range ids {
		walk(id)
	}
	return out
}

// effectiveRoles is every role the user holds: direct mappings, groups (with
// their parents) and the realm default role, composites expanded
// (UserModel.hasRole / RoleUtils.getDeepUserRoleMappings).
func (r *realm) effectiveRoles(u *user) map[string]bool {
	direct := map[string]bool{}
	for id := range u.roles {
		direct[id] = true
	}
	for gid := range u.groups {
		for g := r.groups[gid]; g != nil; g = r.groups[g.parent] {
			for id := range g.roles {
				direct[id] = true
			}
			if g.parent == "" {
				break
			}
		}
	}
	return r.expandRoles(direct)
}

func (r *realm) groupPath(g *group) string {
	path := "/" + g.name
	for p := r.groups[g.parent]; p != nil && g.parent != ""; p = r.groups[p.parent] {
		path = "/" + p.name + path
		if p.parent == "" {
			break
		}
	}
	return path
}
