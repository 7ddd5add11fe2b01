package keycloaktest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Token contents follow services/src/main/java/org/keycloak/protocol/oidc/TokenManager.java
// (initToken, AccessTokenResponseBuilder, responseBuilder) and the protocol
// mappers under services/src/main/java/org/keycloak/protocol/oidc/mappers/.

// errMapper marks a protocol mapper failure; Keycloak answers such failures
// with HTTP 500 (issue #26744: invalid JSON in a JSON-typed attribute).
var errMapper = errors.New("protocol mapper failed")

type tokenTarget int

const (
	targetAccess tokenTarget = iota
	targetID
	targetUserinfo
	targetIntrospection
)

// mapperApplies reads the *.token.claim switches
// (OIDCAttributeMapperHelper.includeInAccessToken, includeInIDToken,
// includeInUserInfo: null follows the ID token; includeInIntrospection: null
// follows the access token).
func mapperApplies(m *protocolMapper, t tokenTarget) bool {
	is := func(k string) (bool, bool) {
		v, ok := m.config[k]
		return v == "true", ok
	}
	switch t {
	case targetAccess:
		v, _ := is("access.token.claim")
		return v
	case targetID:
		v, _ := is("id.token.claim")
		return v
	case targetUserinfo:
		if v, ok := is("userinfo.token.claim"); ok {
			return v
		}
		v, _ := is("id.token.claim")
		return v
	case targetIntrospection:
		if v, ok := is("introspection.token.claim"); ok {
			return v
		}
		v, _ := is("access.token.claim")
		return v
	}
	return false
}

// grantContext is everything mappers read.
type grantContext struct {
	realm     *realm
	client    *client
	user      *user
	session   *userSession
	scopes    []*clientScope
	openid    bool
	issuer    string
	roles     map[string]bool // effective role ids within the client's scope
	scopeText string
}

// newGrantContext resolves client scopes (default + requested optional,
// TokenManager.getRequestedClientScopes) and the roles in scope
// (TokenManager.getAccess: all roles with fullScopeAllowed, otherwise the
// client's own roles).
func (s *Server) newGrantContext(r *realm, c *client, u *user, sess *userSession, scopeParam, issuer string) *grantContext {
	g := &grantContext{realm: r, client: c, user: u, session: sess, issuer: issuer}
	requested := strings.Fields(scopeParam)
	g.openid = contains(requested, "openid")
	seen := map[string]bool{}
	for _, id := range c.defaultScopes {
		if sc := r.scopes[id]; sc != nil && sc.protocol == "openid-connect" && !seen[id] {
			seen[id] = true
			g.scopes = append(g.scopes, sc)
		}
	}
	for _, id := range c.optionalScopes {
		if sc := r.scopes[id]; sc != nil && contains(requested, sc.name) && !seen[id] {
			seen[id] = true
			g.scopes = append(g.scopes, sc)
		}
	}
	var names []string
	if g.openid {
		names = append(names, "openid")
	}
	for _, sc := range g.scopes {
		if sc.attributes["include.in.token.scope"] != "false" {
			names = append(names, sc.name)
		}
	}
	g.scopeText = strings.Join(names, " ")
	all := r.effectiveRoles(u)
	if c.fullScopeAllowed {
		g.roles = all
	} else {
		g.roles = map[string]bool{}
		for id := range all {
			if ro := r.roles[id]; ro != nil && ro.clientRole && ro.container == c.id {
				g.roles[id] = true
			}
		}
	}
	return g
}

func (g *grantContext) mappers() []*protocolMapper {
	out := append([]*protocolMapper(nil), g.client.mappers...)
	for _, sc := range g.scopes {
		out = append(out, sc.mappers...)
	}
	return out
}

// applyMappers runs every mapper that targets t over claims.
func (g *grantContext) applyMappers(claims map[string]any, t tokenTarget) error {
	for _, m := range g.mappers() {
		if m.protocol != "" && m.protocol != "openid-connect" {
			continue
		}
		if m.mapperType == "oidc-audience-resolve-mapper" {
			continue // runs last, it reads resource_access
		}
		if !mapperApplies(m, t) {
			continue
		}
		if err := g.applyMapper(claims, m); err != nil {
			return fmt.Errorf("mapper %q: %w", m.name, err)
		}
	}
	for _, m := range g.mappers() {
		if m.mapperType == "oidc-audience-resolve-mapper" && (t == targetAccess || t == targetIntrospection) {
			g.resolveAudience(claims)
		}
	}
	return nil
}

func (g *grantContext) userValues(name string) []string {
	u := g.user
	switch name {
	case "username":
		return []string{u.username}
	case "email":
		if u.email != "" {
			return []string{u.email}
		}
		return nil
	case "firstName":
		if u.firstName != "" {
			return []string{u.firstName}
		}
		return nil
	case "lastName":
		if u.lastName != "" {
			return []string{u.lastName}
		}
		return nil
	}
	// Mappers read the stored attributes, including those the user profile
	// hides from the admin API (UserModel.getAttributeStream).
	return u.attributes[name]
}

func (g *grantContext) userProperty(name string) []string {
	u := g.user
	switch strings.ToLower(name) {
	case "emailverified":
		return []string{strconv.FormatBool(u.emailVerified)}
	case "enabled":
		return []string{strconv.FormatBool(u.enabled)}
	case "id":
		return []string{u.id}
	case "createdtimestamp":
		return []string{strconv.FormatInt(u.created, 10)}
	case "username":
		return g.userValues("username")
	case "email":
		return g.userValues("email")
	case "firstname":
		return g.userValues("firstName")
	case "lastname":
		return g.userValues("lastName")
	}
	return nil
}

func (g *grantContext) sessionNote(name string) []string {
	s := g.session
	switch name {
	case "AUTH_TIME":
		return []string{strconv.FormatInt(s.authTime, 10)}
	case "client_id":
		if s.serviceAccount {
			return []string{g.client.clientID}
		}
	case "clientHost", "clientAddress":
		if s.serviceAccount {
			return []string{s.ip}
		}
	}
	return nil
}

func (g *grantContext) applyMapper(claims map[string]any, m *protocolMapper) error {
	cfg := m.config
	switch m.mapperType {
	case "oidc-usermodel-attribute-mapper":
		return mapClaim(claims, m, g.userValues(cfg["user.attribute"]))
	case "oidc-usermodel-property-mapper":
		return mapClaim(claims, m, g.userProperty(cfg["user.attribute"]))
	case "oidc-usersessionmodel-note-mapper":
		return mapClaim(claims, m, g.sessionNote(cfg["user.session.note"]))
	case "oidc-hardcoded-claim-mapper":
		return mapClaim(claims, m, []string{cfg["claim.value"]})
	case "oidc-full-name-mapper":
		// FullNameMapper: "first last", omitted when both are empty.
		name := strings.TrimSpace(strings.TrimSpace(g.user.firstName) + " " + strings.TrimSpace(g.user.lastName))
		if name != "" {
			claims["name"] = name
		}
	case "oidc-sub-mapper":
		claims["sub"] = g.user.id
	case "oidc-acr-mapper":
		claims["acr"] = g.session.acr
	case "oidc-allowed-origins-mapper":
		var origins []string
		for _, o := range g.client.webOrigins {
			if o != "+" && o != "" {
				origins = append(origins, o)
			}
		}
		if len(origins) > 0 {
			claims["allowed-origins"] = origins
		}
	case "oidc-usermodel-realm-role-mapper":
		var names []string
		for id := range g.roles {
			if ro := g.realm.roles[id]; ro != nil && !ro.clientRole {
				names = append(names, ro.name)
			}
		}
		sort.Strings(names)
		cm := *m
		cm.config = withDefault(cfg, "claim.name", "realm_access.roles")
		cm.config["multivalued"] = "true"
		return mapClaim(claims, &cm, names)
	case "oidc-usermodel-client-role-mapper":
		byClient := map[string][]string{}
		only := cfg["usermodel.clientRoleMapping.clientId"]
		for id := range g.roles {
			ro := g.realm.roles[id]
			if ro == nil || !ro.clientRole {
				continue
			}
			c := g.realm.clients[ro.container]
			if c == nil || (only != "" && c.clientID != only) {
				continue
			}
			byClient[c.clientID] = append(byClient[c.clientID], ro.name)
		}
		ids := make([]string, 0, len(byClient))
		for id := range byClient {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, cid := range ids {
			names := byClient[cid]
			sort.Strings(names)
			cm := *m
			cm.config = withDefault(cfg, "claim.name", "resource_access.${client_id}.roles")
			cm.config["claim.name"] = strings.ReplaceAll(cm.config["claim.name"], "${client_id}", cid)
			cm.config["multivalued"] = "true"
			if err := mapClaim(claims, &cm, names); err != nil {
				return err
			}
		}
	case "oidc-audience-mapper":
		if a := cfg["included.client.audience"]; a != "" {
			addAudience(claims, a)
		}
		if a := cfg["included.custom.audience"]; a != "" {
			addAudience(claims, a)
		}
	case "oidc-group-membership-mapper":
		var names []string
		for gid := range g.user.groups {
			if gr := g.realm.groups[gid]; gr != nil {
				if cfg["full.path"] == "false" {
					names = append(names, gr.name)
				} else {
					names = append(names, g.realm.groupPath(gr))
				}
			}
		}
		sort.Strings(names)
		cm := *m
		cm.config = withDefault(cfg, "claim.name", "groups")
		cm.config["multivalued"] = "true"
		return mapClaim(claims, &cm, names)
	}
	return nil
}

func withDefault(cfg map[string]string, k, def string) map[string]string {
	out := make(map[string]string, len(cfg)+1)
	for kk, v := range cfg {
		out[kk] = v
	}
	if out[k] == "" {
		out[k] = def
	}
	return out
}

// resolveAudience is AudienceResolveProtocolMapper: every client that has
// roles in resource_access, except the token's own client, joins aud.
func (g *grantContext) resolveAudience(claims map[string]any) {
	ra, _ := claims["resource_access"].(map[string]any)
	ids := make([]string, 0, len(ra))
	for cid := range ra {
		if cid != g.client.clientID {
			ids = append(ids, cid)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		addAudience(claims, id)
	}
}

func addAudience(claims map[string]any, aud string) {
	switch cur := claims["aud"].(type) {
	case nil:
		claims["aud"] = aud
	case string:
		if cur != aud {
			claims["aud"] = []string{cur, aud}
		}
	case []string:
		if !contains(cur, aud) {
			claims["aud"] = append(cur, aud)
		}
	}
}

// convertValue is OIDCAttributeMapperHelper.convertToType. Unparseable
// numbers and JSON are errors that end the token request with 500.
func convertValue(jsonType, v string) (any, error) {
	switch jsonType {
	case "boolean":
		return strings.EqualFold(v, "true"), nil
	case "long":
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is not a long: %v", errMapper, v, err)
		}
		return n, nil
	case "int":
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is not an int: %v", errMapper, v, err)
		}
		return n, nil
	case "JSON":
		var out any
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			return nil, fmt.Errorf("%w: %q is not JSON: %v", errMapper, v, err)
		}
		return out, nil
	}
	return v, nil
}

// splitClaimName splits on dots not escaped with a backslash
// (OIDCAttributeMapperHelper.splitClaimPath).
func splitClaimName(name string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(name); i++ {
		switch {
		case name[i] == '\\' && i+1 < len(name) && name[i+1] == '.':
			cur.WriteByte('.')
			i++
		case name[i] == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(name[i])
		}
	}
	return append(parts, cur.String())
}

// mapClaim is OIDCAttributeMapperHelper.mapClaim: converts the values, keeps
// only the first unless multivalued, and writes the claim at its nested path.
// Multivalued claims merge with an existing list.
func mapClaim(claims map[string]any, m *protocolMapper, values []string) error {
	name := m.config["claim.name"]
	if name == "" || len(values) == 0 {
		return nil
	}
	multi := m.config["multivalued"] == "true"
	jsonType := m.config["jsonType.label"]
	var value any
	if multi {
		list := make([]any, 0, len(values))
		for _, v := range values {
			cv, err := convertValue(jsonType, v)
			if err != nil {
				return err
			}
			list = append(list, cv)
		}
		value = list
	} else {
		cv, err := convertValue(jsonType, values[0])
		if err != nil {
			return err
		}
		value = cv
	}
	path := splitClaimName(name)
	node := claims
	for _, p := range path[:len(path)-1] {
		next, ok := node[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			node[p] = next
		}
		node = next
	}
	last := path[len(path)-1]
	if existing, ok := node[last].([]any); ok && multi {
		for _, v := range value.([]any) {
			dup := false
			for _, e := range existing {
				if e == v {
					dup = true
				}
			}
			if !dup {
				existing = append(existing, v)
			}
		}
		node[last] = existing
		return nil
	}
	node[last] = value
	return nil
}

// atHash is the OIDC at_hash of an RS256 access token.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}
