package keycloaktest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// User profile (Keycloak 24+, always on). Sources:
// services/src/main/java/org/keycloak/userprofile/DeclarativeUserProfileProvider.java,
// server-spi-private/src/main/java/org/keycloak/userprofile/DefaultAttributes.java
// (normalizeAttributes drops undeclared attributes unless unmanaged attributes
// are enabled for the context), services/src/main/java/org/keycloak/userprofile/config/UPConfigUtils.java
// (validation of the configuration) and
// services/src/main/resources/keycloak-default-user-profile.json (the default).

type upConfig struct {
	Attributes               []upAttribute    `json:"attributes"`
	Groups                   []map[string]any `json:"groups,omitempty"`
	UnmanagedAttributePolicy string           `json:"unmanagedAttributePolicy,omitempty"`
}

type upAttribute struct {
	Name        string         `json:"name"`
	DisplayName string         `json:"displayName,omitempty"`
	Validations map[string]any `json:"validations,omitempty"`
	Annotations map[string]any `json:"annotations,omitempty"`
	Required    *upRequired    `json:"required,omitempty"`
	Permissions *upPermissions `json:"permissions,omitempty"`
	Selector    map[string]any `json:"selector,omitempty"`
	Group       string         `json:"group,omitempty"`
	Multivalued bool           `json:"multivalued"`
}

type upRequired struct {
	Roles  []string `json:"roles,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
}

type upPermissions struct {
	View []string `json:"view"`
	Edit []string `json:"edit"`
}

const defaultUserProfileJSON = `{
  "attributes": [
    {"name": "username", "displayName": "${username}",
     "validations": {"length": {"min": 3, "max": 255}, "username-prohibited-characters": {}, "up-username-not-idn-homograph": {}},
     "permissions": {"view": ["admin", "user"], "edit": ["admin", "user"]}, "multivalued": false},
    {"name": "email", "displayName": "${email}",
     "validations": {"email": {}, "length": {"max": 255}},
     "required": {"roles": ["user"]},
     "permissions": {"view": ["admin", "user"], "edit": ["admin", "user"]}, "multivalued": false},
    {"name": "firstName", "displayName": "${firstName}",
     "validations": {"length": {"max": 255}, "person-name-prohibited-characters": {}},
     "required": {"roles": ["user"]},
     "permissions": {"view": ["admin", "user"], "edit": ["admin", "user"]}, "multivalued": false},
    {"name": "lastName", "displayName": "${lastName}",
     "validations": {"length": {"max": 255}, "person-name-prohibited-characters": {}},
     "required": {"roles": ["user"]},
     "permissions": {"view": ["admin", "user"], "edit": ["admin", "user"]}, "multivalued": false}
  ],
  "groups": [
    {"name": "user-metadata", "displayHeader": "User metadata", "displayDescription": "Attributes, which refer to user metadata"}
  ]
}`

func defaultUserProfile() upConfig {
	up, err := parseUserProfile([]byte(defaultUserProfileJSON))
	if err != nil {
		panic("keycloaktest: built-in default user profile is invalid: " + err.Error())
	}
	return up
}

// upConfigError carries Keycloak's message text verbatim: it becomes the
// errorMessage of the 400 answer to PUT users/profile.
type upConfigError string

func (e upConfigError) Error() string { return string(e) }

var attributeNamePattern = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// parseUserProfile parses and validates a configuration the way
// UPConfigUtils.validateConfiguration does; the error text becomes the
// errorMessage of the 400 answer.
func parseUserProfile(raw []byte) (upConfig, error) {
	var up upConfig
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&up); err != nil {
		return upConfig{}, upConfigError(fmt.Sprintf("Invalid UserProfile configuration: %v", err))
	}
	switch up.UnmanagedAttributePolicy {
	case "", "ENABLED", "ADMIN_VIEW", "ADMIN_EDIT":
	default:
		return upConfig{}, upConfigError(fmt.Sprintf("Invalid UserProfile configuration: unknown unmanagedAttributePolicy %q", up.UnmanagedAttributePolicy))
	}
	if len(up.Attributes) == 0 {
		return upConfig{}, upConfigError("UserProfile configuration without 'attributes' section is not allowed")
	}
	seen := map[string]bool{}
	var errs []string
	for _, a := range up.Attributes {
		switch {
		case a.Name == "":
			errs = append(errs, "Attribute configuration without 'name' is not allowed")
		case !attributeNamePattern.MatchString(a.Name):
			errs = append(errs, fmt.Sprintf("Invalid attribute name (only letters, numbers and '.' '_' '-' special characters allowed): %s", a.Name))
		case seen[a.Name]:
			errs = append(errs, fmt.Sprintf("Duplicit attribute configuration with 'name': %s", a.Name))
		}
		seen[a.Name] = true
		if a.Permissions != nil {
			for _, ro := range append(append([]string(nil), a.Permissions.View...), a.Permissions.Edit...) {
				if ro != "admin" && ro != "user" {
					errs = append(errs, fmt.Sprintf("Attribute '%s' permissions contain invalid role: %s", a.Name, ro))
				}
			}
		}
	}
	for _, must := range []string{"username", "email"} {
		if !seen[must] {
			errs = append(errs, fmt.Sprintf("The attribute '%s' can not be removed", must))
		}
	}
	if len(errs) > 0 {
		return upConfig{}, upConfigError(strings.Join(errs, ", "))
	}
	return up, nil
}

func (up *upConfig) attribute(name string) *upAttribute {
	for i := range up.Attributes {
		if up.Attributes[i].Name == name {
			return &up.Attributes[i]
		}
	}
	return nil
}

// upContext is who reads or writes: the admin API or the user through the account API.
type upContext int

const (
	contextAdmin upContext = iota
	contextUser
)

func (c upContext) role() string {
	if c == contextUser {
		return "user"
	}
	return "admin"
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// canView / canEdit follow AttributeMetadata permissions: edit implies view;
// an attribute without permissions is invisible to both contexts.
func (a *upAttribute) canView(ctx upContext) bool {
	if a.Permissions == nil {
		return false
	}
	return contains(a.Permissions.View, ctx.role()) || contains(a.Permissions.Edit, ctx.role())
}

func (a *upAttribute) canEdit(ctx upContext) bool {
	return a.Permissions != nil && contains(a.Permissions.Edit, ctx.role())
}

// unmanagedView / unmanagedEdit implement UnmanagedAttributePolicy.
func (up *upConfig) unmanagedView(ctx upContext) bool {
	switch up.UnmanagedAttributePolicy {
	case "ENABLED":
		return true
	case "ADMIN_VIEW", "ADMIN_EDIT":
		return ctx == contextAdmin
	}
	return false
}

func (up *upConfig) unmanagedEdit(ctx upContext) bool {
	switch up.UnmanagedAttributePolicy {
	case "ENABLED":
		return true
	case "ADMIN_EDIT":
		return ctx == contextAdmin
	}
	return false
}

var rootAttributes = map[string]bool{"username": true, "email": true, "firstName": true, "lastName": true}

// visibleAttributes returns the non-root attributes the context may read
// (UserProfile.getAttributes().getReadable()). Service-account users show all
// of theirs (DefaultAttributes.isServiceAccountUser).
func (up *upConfig) visibleAttributes(u *user, ctx upContext) map[string][]string {
	out := map[string][]string{}
	for k, v := range u.attributes {
		if rootAttributes[k] {
			continue
		}
		a := up.attribute(k)
		switch {
		case u.serviceAccountFor != "":
		case a != nil && a.canView(ctx):
		case a == nil && up.unmanagedView(ctx):
		default:
			continue
		}
		out[k] = append([]string(nil), v...)
	}
	return out
}

// requiredMissing reports whether a declared attribute required for users is
// empty: with VERIFY_PROFILE on, such a user cannot complete a direct grant
// (VerifyProfile.evaluateTriggers).
func (up *upConfig) requiredMissing(u *user) bool {
	for _, a := range up.Attributes {
		if a.Required == nil || len(a.Required.Scopes) > 0 {
			continue
		}
		if len(a.Required.Roles) > 0 && !contains(a.Required.Roles, "user") {
			continue
		}
		var v string
		switch a.Name {
		case "username":
			v = u.username
		case "email":
			v = u.email
		case "firstName":
			v = u.firstName
		case "lastName":
			v = u.lastName
		default:
			if vals := u.attributes[a.Name]; len(vals) > 0 {
				v = vals[0]
			}
		}
		if strings.TrimSpace(v) == "" {
			return true
		}
	}
	return false
}
