package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// fakeAdmin is an in-memory realm with Keycloak's admin semantics for the
// objects provisioning touches (the contract tests run the real thing
// against internal/keycloaktest; this one makes every diff case cheap).
type fakeAdmin struct {
	profile  map[string]any
	scopes   map[string]bridge.ClientScope // by id
	mappers  map[string][]bridge.ProtocolMapper
	clients  map[string]bridge.Client // by clientId
	defaults map[string][]string      // client uuid -> scope ids
	roles    map[string]bool
	writes   int
	failOn   string
}

func newFake() *fakeAdmin {
	return &fakeAdmin{
		profile: map[string]any{
			"attributes": []any{
				map[string]any{"name": "username"},
				map[string]any{"name": "email", "validations": map[string]any{"email": map[string]any{}}},
			},
			"unmanagedAttributePolicy": "ADMIN_VIEW",
		},
		scopes:   map[string]bridge.ClientScope{},
		mappers:  map[string][]bridge.ProtocolMapper{},
		clients:  map[string]bridge.Client{"web": {ID: "uuid-web", ClientID: "web"}},
		defaults: map[string][]string{},
		roles:    map[string]bool{},
	}
}

func (f *fakeAdmin) fail(op string) error {
	if f.failOn == op {
		return fmt.Errorf("%w: %s", bridge.ErrUnavailable, op)
	}
	return nil
}

func (f *fakeAdmin) UserProfile(context.Context) (map[string]any, error) {
	if err := f.fail("profile"); err != nil {
		return nil, err
	}
	return deepCopy(f.profile), nil
}

func (f *fakeAdmin) UpdateUserProfile(_ context.Context, p map[string]any) (map[string]any, error) {
	f.writes++
	f.profile = deepCopy(p)
	return deepCopy(p), nil
}

func (f *fakeAdmin) ClientScopeByName(_ context.Context, name string) (bridge.ClientScope, error) {
	if err := f.fail("scope"); err != nil {
		return bridge.ClientScope{}, err
	}
	for _, s := range f.scopes {
		if s.Name == name {
			return s, nil
		}
	}
	return bridge.ClientScope{}, bridge.ErrNotFound
}

func (f *fakeAdmin) CreateClientScope(_ context.Context, s bridge.ClientScope) (string, error) {
	f.writes++
	s.ID = "scope-" + s.Name
	f.scopes[s.ID] = s
	return s.ID, nil
}

func (f *fakeAdmin) ProtocolMappers(_ context.Context, id string) ([]bridge.ProtocolMapper, error) {
	return append([]bridge.ProtocolMapper(nil), f.mappers[id]...), nil
}

func (f *fakeAdmin) CreateProtocolMapper(_ context.Context, id string, m bridge.ProtocolMapper) (string, error) {
	f.writes++
	m.ID = "mapper-" + m.Name
	f.mappers[id] = append(f.mappers[id], m)
	return m.ID, nil
}

func (f *fakeAdmin) UpdateProtocolMapper(_ context.Context, id string, m bridge.ProtocolMapper) error {
	f.writes++
	for i, old := range f.mappers[id] {
		if old.ID == m.ID {
			f.mappers[id][i] = m
			return nil
		}
	}
	return bridge.ErrNotFound
}

func (f *fakeAdmin) ClientByClientID(_ context.Context, clientID string) (bridge.Client, error) {
	c, ok := f.clients[clientID]
	if !ok {
		return bridge.Client{}, bridge.ErrNotFound
	}
	return c, nil
}

func (f *fakeAdmin) DefaultClientScopes(_ context.Context, uuid string) ([]bridge.ClientScope, error) {
	var out []bridge.ClientScope
	for _, id := range f.defaults[uuid] {
		out = append(out, f.scopes[id])
	}
	return out, nil
}

func (f *fakeAdmin) AddDefaultClientScope(_ context.Context, uuid, scopeID string) error {
	f.writes++
	f.defaults[uuid] = append(f.defaults[uuid], scopeID)
	return nil
}

func (f *fakeAdmin) RealmRole(_ context.Context, name string) (bridge.Role, error) {
	if !f.roles[name] {
		return bridge.Role{}, bridge.ErrNotFound
	}
	return bridge.Role{Name: name}, nil
}

func (f *fakeAdmin) CreateRealmRole(_ context.Context, r bridge.Role) error {
	f.writes++
	f.roles[r.Name] = true
	return nil
}

func deepCopy(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopy(x)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = copyValue(x[i])
		}
		return out
	default:
		return v
	}
}

var want = Desired{Attribute: "stepup", ClientScope: "stepup", Clients: []string{"web"}, AdminRole: "stepup-admin"}

func lines(cs []Change) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return strings.Join(out, "\n")
}

func TestFreshRealmPlansEverythingAndApplyConverges(t *testing.T) {
	f := newFake()
	ctx := context.Background()
	plan, err := Plan(ctx, f, want)
	if err != nil {
		t.Fatal(err)
	}
	got := lines(plan)
	for _, w := range []string{
		`+ user profile attribute "stepup"`,
		`+ client scope "stepup"`,
		`+ protocol mapper "stepup" in client scope "stepup"`,
		`+ default client scope "stepup" of client "web"`,
		`+ realm role "stepup-admin"`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("plan lacks %q:\n%s", w, got)
		}
	}
	if f.writes != 0 {
		t.Fatalf("plan wrote %d times", f.writes)
	}
	applied, err := Apply(ctx, f, want)
	if err != nil || len(applied) != len(plan) {
		t.Fatalf("apply = %v, %v", applied, err)
	}
	// Other profile attributes and settings are carried over as read.
	if f.profile["unmanagedAttributePolicy"] != "ADMIN_VIEW" || findAttribute(f.profile, "email")["validations"] == nil {
		t.Fatalf("apply lost profile settings: %v", f.profile)
	}
	writes := f.writes
	again, err := Plan(ctx, f, want)
	if err != nil || len(again) != 0 {
		t.Fatalf("plan after apply = %s, %v", lines(again), err)
	}
	if _, err := Apply(ctx, f, want); err != nil || f.writes != writes {
		t.Fatalf("second apply wrote %d times (%v)", f.writes-writes, err)
	}
}

func TestAttributeDrift(t *testing.T) {
	tests := []struct {
		name   string
		attr   map[string]any
		detail string // "" = no change
	}{
		{"as desired", map[string]any{"name": "stepup", "multivalued": true,
			"permissions": map[string]any{"view": []any{"admin"}, "edit": []any{"admin"}}}, ""},
		{"users may edit", map[string]any{"name": "stepup", "multivalued": true,
			"permissions": map[string]any{"view": []any{"admin", "user"}, "edit": []any{"admin", "user"}}}, "edit [admin user] -> [admin]"},
		{"users may view", map[string]any{"name": "stepup", "multivalued": true,
			"permissions": map[string]any{"view": []any{"admin", "user"}, "edit": []any{"admin"}}}, "view [admin user] -> [admin]"},
		{"user edit implies view", map[string]any{"name": "stepup", "multivalued": true,
			"permissions": map[string]any{"view": []any{"admin"}, "edit": []any{"admin", "user"}}}, "view [admin user] -> [admin]"},
		{"no permissions", map[string]any{"name": "stepup", "multivalued": true}, "edit [] -> [admin]"},
		{"single-valued", map[string]any{"name": "stepup",
			"permissions": map[string]any{"view": []any{"admin"}, "edit": []any{"admin"}}}, "multivalued false -> true"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			attrs := f.profile["attributes"].([]any)
			tc.attr["annotations"] = map[string]any{"kept": "yes"}
			f.profile["attributes"] = append(attrs, tc.attr)
			u := &attributeUnit{a: f, name: "stepup"}
			c, err := u.plan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tc.detail == "" {
				if c != nil {
					t.Fatalf("unexpected change %s", c)
				}
				return
			}
			if c == nil || c.Action != '~' || !strings.Contains(c.Detail, tc.detail) {
				t.Fatalf("change = %v, want ~ with %q", c, tc.detail)
			}
			if err := u.apply(context.Background()); err != nil {
				t.Fatal(err)
			}
			if c, _ := u.plan(context.Background()); c != nil {
				t.Fatalf("still drifting after apply: %s", c)
			}
			got := findAttribute(f.profile, "stepup")
			if got["annotations"] == nil {
				t.Fatal("apply dropped what an operator added to the attribute")
			}
			if n := len(f.profile["attributes"].([]any)); n != 3 {
				t.Fatalf("profile has %d attributes, want 3", n)
			}
		})
	}
}

func TestMapperDriftIsUpdatedInPlace(t *testing.T) {
	f := newFake()
	ctx := context.Background()
	if _, err := Apply(ctx, f, want); err != nil {
		t.Fatal(err)
	}
	m := &f.mappers["scope-stepup"][0]
	m.Config["jsonType.label"] = "String" // values would reach tokens as strings
	m.Config["custom.key"] = "operator"
	plan, err := Plan(ctx, f, want)
	if err != nil || len(plan) != 1 || plan[0].Action != '~' || !strings.Contains(plan[0].Detail, `jsonType.label "String" -> "JSON"`) {
		t.Fatalf("plan = %s, %v", lines(plan), err)
	}
	if _, err := Apply(ctx, f, want); err != nil {
		t.Fatal(err)
	}
	ms := f.mappers["scope-stepup"]
	if len(ms) != 1 || ms[0].Config["jsonType.label"] != "JSON" || ms[0].Config["custom.key"] != "operator" {
		t.Fatalf("mappers after apply = %+v", ms)
	}
}

func TestErrorsNameTheObject(t *testing.T) {
	f := newFake()
	_, err := Plan(context.Background(), f, Desired{Attribute: "stepup", ClientScope: "stepup", Clients: []string{"missing-client"}})
	if err == nil || !strings.Contains(err.Error(), `client "missing-client"`) {
		t.Fatalf("unknown client: %v", err)
	}
	f.failOn = "profile"
	_, err = Plan(context.Background(), f, want)
	if !errors.Is(err, bridge.ErrUnavailable) || !strings.Contains(err.Error(), "user profile") {
		t.Fatalf("unavailable Keycloak: %v", err)
	}
}
