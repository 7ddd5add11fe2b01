// Package provision is `stepup-bridge plan` and `apply`: the Keycloak
// objects the bridge needs, each a unit that reads what the realm has,
// diffs it against what is desired and creates or updates it, in the
// manner of terraform-provider-keycloak's resources.
//
// Units, in apply order:
//
//	user profile attribute  the step-up attribute, multivalued, view and edit by admins only
//	client scope            carries the mapper; a default scope of the configured clients
//	protocol mapper         oidc-usermodel-attribute-mapper, jsonType JSON, access token + introspection
//	default scope           one unit per configured client
//	realm role              the admin role of the sidecar's admin API
//
// The attribute's permissions are the security heart of the bridge: if
// users could edit it, anyone could forge a step-up. Plan therefore
// reports any permission beyond admin-only as a change, and apply fixes it.
// Nothing is ever deleted: a change is "+" (create) or "~" (update).
package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Admin is the part of the bridge provisioning uses; *bridge.Bridge
// satisfies it.
type Admin interface {
	UserProfile(ctx context.Context) (map[string]any, error)
	UpdateUserProfile(ctx context.Context, profile map[string]any) (map[string]any, error)
	ClientScopeByName(ctx context.Context, name string) (bridge.ClientScope, error)
	CreateClientScope(ctx context.Context, s bridge.ClientScope) (string, error)
	ProtocolMappers(ctx context.Context, scopeID string) ([]bridge.ProtocolMapper, error)
	CreateProtocolMapper(ctx context.Context, scopeID string, m bridge.ProtocolMapper) (string, error)
	UpdateProtocolMapper(ctx context.Context, scopeID string, m bridge.ProtocolMapper) error
	ClientByClientID(ctx context.Context, clientID string) (bridge.Client, error)
	DefaultClientScopes(ctx context.Context, clientUUID string) ([]bridge.ClientScope, error)
	AddDefaultClientScope(ctx context.Context, clientUUID, scopeID string) error
	RealmRole(ctx context.Context, name string) (bridge.Role, error)
	CreateRealmRole(ctx context.Context, r bridge.Role) error
}

var _ Admin = (*bridge.Bridge)(nil)

// Desired is the configuration the realm should have.
type Desired struct {
	// Attribute is the user attribute and claim name (config claims.attribute).
	Attribute string
	// ClientScope is the scope carrying the mapper (claims.client_scope).
	ClientScope string
	// Clients get ClientScope as a default scope (claims.clients).
	Clients []string
	// AdminRole is the realm role of the admin API (admin.role).
	AdminRole string
}

// Change is one line of a plan: Action is '+' (create) or '~' (update).
type Change struct {
	Action byte
	// Object names the Keycloak object, e.g. `client scope "stepup"`.
	Object string
	// Detail says what differs, for updates.
	Detail string
}

// String is the plan line.
func (c Change) String() string {
	s := string(c.Action) + " " + c.Object
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	return s
}

// unit is one Keycloak object: read it, say what differs, make it so.
type unit interface {
	// plan reads the object and returns the change apply would make, or
	// nil when the object is as desired.
	plan(ctx context.Context) (*Change, error)
	// apply makes the change plan reported.
	apply(ctx context.Context) error
}

// Plan lists what Apply would change, in apply order. An empty list means
// the realm is as desired.
func Plan(ctx context.Context, a Admin, d Desired) ([]Change, error) {
	var out []Change
	for _, u := range units(a, d) {
		c, err := u.plan(ctx)
		if err != nil {
			return nil, err
		}
		if c != nil {
			out = append(out, *c)
		}
	}
	return out, nil
}

// Apply makes the realm as desired and returns what it changed. A second
// Apply changes nothing. It stops at the first error; what it changed
// until then stays (every unit is safe to apply again).
func Apply(ctx context.Context, a Admin, d Desired) ([]Change, error) {
	var out []Change
	for _, u := range units(a, d) {
		c, err := u.plan(ctx)
		if err != nil {
			return out, err
		}
		if c == nil {
			continue
		}
		if err := u.apply(ctx); err != nil {
			return out, fmt.Errorf("provision: %s: %w", c.Object, err)
		}
		out = append(out, *c)
	}
	return out, nil
}

// Print writes changes as plan lines, and a summary.
func Print(w io.Writer, changes []Change, verb string) error {
	for _, c := range changes {
		if _, err := fmt.Fprintln(w, c.String()); err != nil {
			return err
		}
	}
	var err error
	if len(changes) == 0 {
		_, err = fmt.Fprintln(w, "No changes: Keycloak has everything stepup-bridge needs.")
	} else {
		_, err = fmt.Fprintf(w, "%s: %d change(s).\n", verb, len(changes))
	}
	return err
}

func units(a Admin, d Desired) []unit {
	scope := &scopeUnit{a: a, name: d.ClientScope}
	us := []unit{
		&attributeUnit{a: a, name: d.Attribute},
		scope,
		&mapperUnit{a: a, scope: scope, attribute: d.Attribute},
	}
	for _, c := range d.Clients {
		us = append(us, &defaultScopeUnit{a: a, scope: scope, clientID: c})
	}
	if d.AdminRole != "" {
		us = append(us, &roleUnit{a: a, name: d.AdminRole})
	}
	return us
}

// ---- user profile attribute ----

type attributeUnit struct {
	a    Admin
	name string
}

// desiredAttribute is the declaration: multivalued, admins only. Keycloak
// drops undeclared attributes when unmanaged attributes are off (24+).
func (u *attributeUnit) desired() map[string]any {
	return map[string]any{
		"name":        u.name,
		"displayName": "Step-up claims (managed by stepup-bridge)",
		"multivalued": true,
		"permissions": map[string]any{"view": []any{"admin"}, "edit": []any{"admin"}},
	}
}

func (u *attributeUnit) plan(ctx context.Context) (*Change, error) {
	profile, err := u.a.UserProfile(ctx)
	if err != nil {
		return nil, fmt.Errorf("provision: reading the user profile: %w", err)
	}
	obj := fmt.Sprintf("user profile attribute %q", u.name)
	cur := findAttribute(profile, u.name)
	if cur == nil {
		return &Change{Action: '+', Object: obj, Detail: "multivalued, view and edit by admin only"}, nil
	}
	var diffs []string
	if mv, _ := cur["multivalued"].(bool); !mv {
		diffs = append(diffs, "multivalued false -> true")
	}
	view, edit := permissions(cur)
	if !slices.Equal(view, []string{"admin"}) {
		diffs = append(diffs, fmt.Sprintf("view %v -> [admin]", view))
	}
	if !slices.Equal(edit, []string{"admin"}) {
		diffs = append(diffs, fmt.Sprintf("edit %v -> [admin]", edit))
	}
	if len(diffs) == 0 {
		return nil, nil
	}
	return &Change{Action: '~', Object: obj, Detail: strings.Join(diffs, ", ")}, nil
}

func (u *attributeUnit) apply(ctx context.Context) error {
	// GET, modify, PUT: the PUT replaces the whole configuration, so every
	// other attribute and setting is carried over as read.
	profile, err := u.a.UserProfile(ctx)
	if err != nil {
		return err
	}
	attrs, _ := profile["attributes"].([]any)
	want := u.desired()
	replaced := false
	for i, a := range attrs {
		m, ok := a.(map[string]any)
		if !ok || m["name"] != u.name {
			continue
		}
		// Keep what an operator added (validations, annotations, group)
		// and fix what matters.
		m["multivalued"] = true
		m["permissions"] = want["permissions"]
		if _, ok := m["displayName"]; !ok {
			m["displayName"] = want["displayName"]
		}
		attrs[i] = m
		replaced = true
	}
	if !replaced {
		attrs = append(attrs, want)
	}
	profile["attributes"] = attrs
	if _, err := u.a.UpdateUserProfile(ctx, profile); err != nil {
		return err
	}
	return nil
}

func findAttribute(profile map[string]any, name string) map[string]any {
	attrs, _ := profile["attributes"].([]any)
	for _, a := range attrs {
		if m, ok := a.(map[string]any); ok && m["name"] == name {
			return m
		}
	}
	return nil
}

// permissions returns the attribute's view and edit roles, sorted. Edit
// implies view in Keycloak, so editors are added to the viewers.
func permissions(attr map[string]any) (view, edit []string) {
	p, _ := attr["permissions"].(map[string]any)
	list := func(k string) []string {
		var out []string
		vs, _ := p[k].([]any)
		for _, v := range vs {
			if s, ok := v.(string); ok && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		slices.Sort(out)
		return out
	}
	view, edit = list("view"), list("edit")
	for _, e := range edit {
		if !slices.Contains(view, e) {
			view = append(view, e)
		}
	}
	slices.Sort(view)
	return view, edit
}

// ---- client scope ----

type scopeUnit struct {
	a    Admin
	name string
	// id is known after plan found the scope or apply created it.
	id string
}

func (u *scopeUnit) plan(ctx context.Context) (*Change, error) {
	s, err := u.a.ClientScopeByName(ctx, u.name)
	if errors.Is(err, bridge.ErrNotFound) {
		return &Change{Action: '+', Object: fmt.Sprintf("client scope %q", u.name), Detail: "openid-connect"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("provision: reading client scope %q: %w", u.name, err)
	}
	u.id = s.ID
	return nil, nil
}

func (u *scopeUnit) apply(ctx context.Context) error {
	id, err := u.a.CreateClientScope(ctx, bridge.ClientScope{
		Name:        u.name,
		Description: "Step-up claims written by stepup-bridge",
		Protocol:    "openid-connect",
		Attributes: map[string]string{
			"include.in.token.scope":    "false",
			"display.on.consent.screen": "false",
		},
	})
	if err != nil {
		return err
	}
	u.id = id
	return nil
}

// ---- protocol mapper ----

type mapperUnit struct {
	a         Admin
	scope     *scopeUnit
	attribute string
	// existing is the mapper found by plan, to update in place.
	existing *bridge.ProtocolMapper
}

func (u *mapperUnit) desired() bridge.ProtocolMapper {
	return bridge.ProtocolMapper{
		Name:           u.attribute,
		Protocol:       "openid-connect",
		ProtocolMapper: "oidc-usermodel-attribute-mapper",
		Config: map[string]string{
			"user.attribute":            u.attribute,
			"claim.name":                u.attribute,
			"jsonType.label":            "JSON",
			"multivalued":               "true",
			"aggregate.attrs":           "false",
			"access.token.claim":        "true",
			"introspection.token.claim": "true",
			"id.token.claim":            "false",
			"userinfo.token.claim":      "false",
			"lightweight.claim":         "false",
		},
	}
}

func (u *mapperUnit) plan(ctx context.Context) (*Change, error) {
	obj := fmt.Sprintf("protocol mapper %q in client scope %q", u.attribute, u.scope.name)
	u.existing = nil
	if u.scope.id == "" {
		return &Change{Action: '+', Object: obj, Detail: "oidc-usermodel-attribute-mapper, JSON, multivalued, access token + introspection"}, nil
	}
	ms, err := u.a.ProtocolMappers(ctx, u.scope.id)
	if err != nil {
		return nil, fmt.Errorf("provision: reading mappers of %q: %w", u.scope.name, err)
	}
	want := u.desired()
	for _, m := range ms {
		if m.Name != want.Name {
			continue
		}
		var diffs []string
		if m.ProtocolMapper != want.ProtocolMapper {
			diffs = append(diffs, fmt.Sprintf("type %s -> %s", m.ProtocolMapper, want.ProtocolMapper))
		}
		keys := make([]string, 0, len(want.Config))
		for k := range want.Config {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if m.Config[k] != want.Config[k] {
				diffs = append(diffs, fmt.Sprintf("%s %q -> %q", k, m.Config[k], want.Config[k]))
			}
		}
		if len(diffs) == 0 {
			return nil, nil
		}
		mm := m
		u.existing = &mm
		return &Change{Action: '~', Object: obj, Detail: strings.Join(diffs, ", ")}, nil
	}
	return &Change{Action: '+', Object: obj, Detail: "oidc-usermodel-attribute-mapper, JSON, multivalued, access token + introspection"}, nil
}

func (u *mapperUnit) apply(ctx context.Context) error {
	if u.scope.id == "" {
		return errors.New("client scope does not exist")
	}
	want := u.desired()
	if u.existing != nil {
		want.ID = u.existing.ID
		// Keep config keys an operator added; ours win.
		for k, v := range u.existing.Config {
			if _, ours := want.Config[k]; !ours {
				want.Config[k] = v
			}
		}
		return u.a.UpdateProtocolMapper(ctx, u.scope.id, want)
	}
	_, err := u.a.CreateProtocolMapper(ctx, u.scope.id, want)
	return err
}

// ---- default scope of a client ----

type defaultScopeUnit struct {
	a        Admin
	scope    *scopeUnit
	clientID string
	uuid     string
}

func (u *defaultScopeUnit) plan(ctx context.Context) (*Change, error) {
	obj := fmt.Sprintf("default client scope %q of client %q", u.scope.name, u.clientID)
	c, err := u.a.ClientByClientID(ctx, u.clientID)
	if errors.Is(err, bridge.ErrNotFound) {
		return nil, fmt.Errorf("provision: client %q (claims.clients) does not exist in the realm", u.clientID)
	}
	if err != nil {
		return nil, fmt.Errorf("provision: reading client %q: %w", u.clientID, err)
	}
	u.uuid = c.ID
	if u.scope.id == "" {
		return &Change{Action: '+', Object: obj}, nil
	}
	scopes, err := u.a.DefaultClientScopes(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("provision: reading default scopes of %q: %w", u.clientID, err)
	}
	for _, s := range scopes {
		if s.ID == u.scope.id || s.Name == u.scope.name {
			return nil, nil
		}
	}
	return &Change{Action: '+', Object: obj}, nil
}

func (u *defaultScopeUnit) apply(ctx context.Context) error {
	if u.scope.id == "" {
		return errors.New("client scope does not exist")
	}
	return u.a.AddDefaultClientScope(ctx, u.uuid, u.scope.id)
}

// ---- realm role ----

type roleUnit struct {
	a    Admin
	name string
}

func (u *roleUnit) plan(ctx context.Context) (*Change, error) {
	_, err := u.a.RealmRole(ctx, u.name)
	if errors.Is(err, bridge.ErrNotFound) {
		return &Change{Action: '+', Object: fmt.Sprintf("realm role %q", u.name), Detail: "admin API of stepup-bridge"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("provision: reading realm role %q: %w", u.name, err)
	}
	return nil, nil
}

func (u *roleUnit) apply(ctx context.Context) error {
	return u.a.CreateRealmRole(ctx, bridge.Role{Name: u.name, Description: "Administers step-up factors and reads the audit trail (stepup-bridge)"})
}
