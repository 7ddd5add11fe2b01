package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// User is the part of a Keycloak user the sidecar reads. Attributes holds
// what the admin API shows (admin-viewable attributes); the caller owns
// the maps and slices.
type User struct {
	ID              string
	Username        string
	Email           string
	FirstName       string
	LastName        string
	Enabled         bool
	EmailVerified   bool
	Attributes      map[string][]string
	RequiredActions []string
	CreatedAt       time.Time
}

// Group is one group membership of a user.
type Group struct {
	ID   string
	Name string
	// Path is the full path, e.g. /staff/admins.
	Path string
}

// Client is the part of a Keycloak client plan/apply needs.
type Client struct {
	// ID is the internal UUID used in admin URLs.
	ID string
	// ClientID is the name clients log in with.
	ClientID             string
	PublicClient         bool
	DirectAccessGrants   bool
	ServiceAccountsOn    bool
	DefaultClientScopes  []string
	OptionalClientScopes []string
}

// ClientScope is a client scope. Attributes are Keycloak's string map
// (include.in.token.scope, display.on.consent.screen, ...), sent as is.
type ClientScope struct {
	ID          string            `json:"id,omitempty"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Protocol    string            `json:"protocol,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
}

// ProtocolMapper is a protocol mapper of a client scope. Config is sent as
// a raw string map, so keys gocloak does not know
// (introspection.token.claim, lightweight.claim) are kept.
type ProtocolMapper struct {
	ID             string            `json:"id,omitempty"`
	Name           string            `json:"name"`
	Protocol       string            `json:"protocol"`
	ProtocolMapper string            `json:"protocolMapper"`
	Config         map[string]string `json:"config"`
}

// Role is a realm role.
type Role struct {
	ID          string
	Name        string
	Description string
}

// userFromRaw decodes the fields of User from a raw representation.
func userFromRaw(raw map[string]any) (User, error) {
	b, err := json.Marshal(raw)
	if err != nil {
		return User{}, fmt.Errorf("bridge: re-encoding user: %w", err)
	}
	var r struct {
		ID               string              `json:"id"`
		Username         string              `json:"username"`
		Email            string              `json:"email"`
		FirstName        string              `json:"firstName"`
		LastName         string              `json:"lastName"`
		Enabled          bool                `json:"enabled"`
		EmailVerified    bool                `json:"emailVerified"`
		Attributes       map[string][]string `json:"attributes"`
		RequiredActions  []string            `json:"requiredActions"`
		CreatedTimestamp int64               `json:"createdTimestamp"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return User{}, &Error{Op: "get user", Status: http.StatusOK, Message: "unexpected user representation: " + err.Error(), Kind: ErrUnavailable}
	}
	u := User{ID: r.ID, Username: r.Username, Email: r.Email, FirstName: r.FirstName, LastName: r.LastName,
		Enabled: r.Enabled, EmailVerified: r.EmailVerified, Attributes: r.Attributes, RequiredActions: r.RequiredActions}
	if r.CreatedTimestamp > 0 {
		u.CreatedAt = time.UnixMilli(r.CreatedTimestamp)
	}
	return u, nil
}

// GetUser reads a user by id (the token's sub). ErrNotFound if absent.
func (b *Bridge) GetUser(ctx context.Context, id string) (u User, err error) {
	defer b.track("get_user")(&err)
	if id == "" {
		return User{}, &Error{Op: "get user", Message: "empty user id", Kind: ErrNotFound}
	}
	var raw map[string]any
	err = b.admin(ctx, func(tok string) error {
		var err error
		raw, err = b.kc.userRaw(ctx, tok, id)
		return err
	})
	if err != nil {
		return User{}, err
	}
	return userFromRaw(raw)
}

// UserRealmRoles returns a user's effective realm role names (direct,
// composite and through groups), for login policies.
func (b *Bridge) UserRealmRoles(ctx context.Context, id string) (roles []string, err error) {
	defer b.track("user_realm_roles")(&err)
	err = b.admin(ctx, func(tok string) error {
		var err error
		roles, err = b.kc.realmRolesOfUser(ctx, tok, id)
		return err
	})
	return roles, err
}

// UserGroups returns, for each group the user is a direct member of, its
// full path ("/staff/admins") and, when different, its name ("admins"),
// so login policy may name a group either way (a path is unambiguous; a
// name may match subgroups of different parents). Up to 1000 groups.
func (b *Bridge) UserGroups(ctx context.Context, id string) ([]string, error) {
	groups, err := b.UserGroupDetails(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, 2*len(groups))
	for _, g := range groups {
		if g.Path != "" {
			out = append(out, g.Path)
		}
		if g.Name != "" && g.Name != g.Path {
			out = append(out, g.Name)
		}
	}
	return out, nil
}

// UserGroupDetails returns the groups a user is a direct member of (up to 1000).
func (b *Bridge) UserGroupDetails(ctx context.Context, id string) (groups []Group, err error) {
	defer b.track("user_groups")(&err)
	err = b.admin(ctx, func(tok string) error {
		var err error
		groups, err = b.kc.groupsOfUser(ctx, tok, id)
		return err
	})
	return groups, err
}

// UserLocked reports whether Keycloak's brute-force protection currently
// locks the user out (the attack-detection "disabled" flag).
func (b *Bridge) UserLocked(ctx context.Context, id string) (locked bool, err error) {
	defer b.track("brute_force_status")(&err)
	err = b.admin(ctx, func(tok string) error {
		st, err := b.kc.bruteForce(ctx, tok, id)
		if err != nil {
			return err
		}
		locked, _ = st["disabled"].(bool)
		return nil
	})
	return locked, err
}

// UserProfile returns the realm's user-profile configuration as raw JSON
// (attributes, groups, unmanagedAttributePolicy). Modify it and give it
// back to UpdateUserProfile whole: the PUT replaces everything.
func (b *Bridge) UserProfile(ctx context.Context) (profile map[string]any, err error) {
	defer b.track("get_user_profile")(&err)
	err = b.admin(ctx, func(tok string) error {
		_, err := b.kc.do(ctx, request{op: "get user profile", method: http.MethodGet, url: b.kc.adminURL("users", "profile"), token: tok, out: &profile})
		return err
	})
	return profile, err
}

// UpdateUserProfile replaces the realm's user-profile configuration (needs
// manage-realm) and returns what Keycloak stored. ErrBadRequest carries
// Keycloak's reason when the configuration is invalid.
func (b *Bridge) UpdateUserProfile(ctx context.Context, profile map[string]any) (stored map[string]any, err error) {
	defer b.track("update_user_profile")(&err)
	err = b.admin(ctx, func(tok string) error {
		_, err := b.kc.do(ctx, request{op: "update user profile", method: http.MethodPut, url: b.kc.adminURL("users", "profile"), token: tok, body: profile, out: &stored})
		return err
	})
	return stored, err
}

// ClientScopes lists the realm's client scopes (needs view-clients).
func (b *Bridge) ClientScopes(ctx context.Context) (scopes []ClientScope, err error) {
	defer b.track("list_client_scopes")(&err)
	err = b.admin(ctx, func(tok string) error {
		_, err := b.kc.do(ctx, request{op: "list client scopes", method: http.MethodGet, url: b.kc.adminURL("client-scopes"), token: tok, out: &scopes})
		return err
	})
	return scopes, err
}

// ClientScopeByName finds a client scope by name; ErrNotFound if none.
func (b *Bridge) ClientScopeByName(ctx context.Context, name string) (ClientScope, error) {
	scopes, err := b.ClientScopes(ctx)
	if err != nil {
		return ClientScope{}, err
	}
	for _, s := range scopes {
		if s.Name == name {
			return s, nil
		}
	}
	return ClientScope{}, &Error{Op: "find client scope", Status: http.StatusNotFound, Message: fmt.Sprintf("no client scope %q", name), Kind: ErrNotFound}
}

// CreateClientScope creates a client scope and returns its id; ErrConflict
// if the name exists.
func (b *Bridge) CreateClientScope(ctx context.Context, s ClientScope) (id string, err error) {
	defer b.track("create_client_scope")(&err)
	s.ID = ""
	if s.Protocol == "" {
		s.Protocol = "openid-connect"
	}
	err = b.admin(ctx, func(tok string) error {
		resp, err := b.kc.do(ctx, request{op: "create client scope", method: http.MethodPost, url: b.kc.adminURL("client-scopes"), token: tok, body: s})
		id = idFromLocation(resp.location)
		return err
	})
	return id, err
}

// ProtocolMappers lists the protocol mappers of a client scope.
func (b *Bridge) ProtocolMappers(ctx context.Context, scopeID string) (mappers []ProtocolMapper, err error) {
	defer b.track("list_protocol_mappers")(&err)
	err = b.admin(ctx, func(tok string) error {
		_, err := b.kc.do(ctx, request{op: "list protocol mappers", method: http.MethodGet, url: b.kc.adminURL("client-scopes", scopeID, "protocol-mappers", "models"), token: tok, out: &mappers})
		return err
	})
	return mappers, err
}

// CreateProtocolMapper adds a mapper to a client scope and returns its id;
// ErrConflict if a mapper of that name exists.
func (b *Bridge) CreateProtocolMapper(ctx context.Context, scopeID string, m ProtocolMapper) (id string, err error) {
	defer b.track("create_protocol_mapper")(&err)
	m.ID = ""
	err = b.admin(ctx, func(tok string) error {
		resp, err := b.kc.do(ctx, request{op: "create protocol mapper", method: http.MethodPost, url: b.kc.adminURL("client-scopes", scopeID, "protocol-mappers", "models"), token: tok, body: m})
		id = idFromLocation(resp.location)
		return err
	})
	return id, err
}

// UpdateProtocolMapper replaces mapper m (by m.ID) of a client scope.
func (b *Bridge) UpdateProtocolMapper(ctx context.Context, scopeID string, m ProtocolMapper) (err error) {
	defer b.track("update_protocol_mapper")(&err)
	if m.ID == "" {
		return &Error{Op: "update protocol mapper", Message: "mapper id required", Kind: ErrBadRequest}
	}
	return b.admin(ctx, func(tok string) error {
		_, err := b.kc.do(ctx, request{op: "update protocol mapper", method: http.MethodPut, url: b.kc.adminURL("client-scopes", scopeID, "protocol-mappers", "models", m.ID), token: tok, body: m})
		return err
	})
}

// ClientByClientID finds a client by its clientId; ErrNotFound if none.
func (b *Bridge) ClientByClientID(ctx context.Context, clientID string) (c Client, err error) {
	defer b.track("find_client")(&err)
	err = b.admin(ctx, func(tok string) error {
		var err error
		c, err = b.kc.clientByClientID(ctx, tok, clientID)
		return err
	})
	return c, err
}

// DefaultClientScopes lists the default client scopes of a client, by the
// client's UUID (Client.ID).
func (b *Bridge) DefaultClientScopes(ctx context.Context, clientUUID string) (scopes []ClientScope, err error) {
	defer b.track("list_default_client_scopes")(&err)
	err = b.admin(ctx, func(tok string) error {
		var err error
		scopes, err = b.kc.defaultScopes(ctx, tok, clientUUID)
		return err
	})
	return scopes, err
}

// AddDefaultClientScope makes scopeID a default scope of the client;
// ErrNotFound for an unknown scope or client.
func (b *Bridge) AddDefaultClientScope(ctx context.Context, clientUUID, scopeID string) (err error) {
	defer b.track("add_default_client_scope")(&err)
	return b.admin(ctx, func(tok string) error { return b.kc.addDefaultScope(ctx, tok, clientUUID, scopeID) })
}

// RealmRole reads a realm role; ErrNotFound if absent.
func (b *Bridge) RealmRole(ctx context.Context, name string) (r Role, err error) {
	defer b.track("get_realm_role")(&err)
	err = b.admin(ctx, func(tok string) error {
		var err error
		r, err = b.kc.realmRole(ctx, tok, name)
		return err
	})
	return r, err
}

// CreateRealmRole creates a realm role; ErrConflict if it exists.
func (b *Bridge) CreateRealmRole(ctx context.Context, r Role) (err error) {
	defer b.track("create_realm_role")(&err)
	return b.admin(ctx, func(tok string) error { return b.kc.createRealmRole(ctx, tok, r) })
}

// Introspect asks Keycloak about a token (RFC 7662) and returns its raw
// answer: {"active": false} for a token that is no longer valid, else the
// claims (including mapper claims with introspection.token.claim on).
// Introspection needs a confidential client: the login client is used if
// it has a secret, else the admin client.
func (b *Bridge) Introspect(ctx context.Context, tok string) (res map[string]any, err error) {
	defer b.track("introspect")(&err)
	id, secret := b.cfg.ClientID, b.cfg.ClientSecret
	if secret == "" {
		id, secret = b.cfg.AdminClientID, b.cfg.AdminClientSecret
	}
	res, err = b.kc.introspect(ctx, id, secret, tok)
	if err != nil {
		return nil, grantError(err, ErrBadRequest)
	}
	return res, nil
}
