package keycloaktest

// Built-in client scopes, clients and roles that Keycloak creates for every
// new realm. Source: services/src/main/java/org/keycloak/services/managers/RealmManager.java
// (setupRealmAdminManagement, setupAccountManagement, setupAdminCli),
// server-spi-private/src/main/java/org/keycloak/models/utils/DefaultClientScopes.java,
// services/src/main/java/org/keycloak/protocol/oidc/OIDCLoginProtocolFactory.java
// (builtin mappers and createDefaultClientScopesImpl) and
// server-spi-private/src/main/java/org/keycloak/models/AdminRoles.java.

const (
	realmManagementClientID = "realm-management"
	accountClientID         = "account"
	adminCLIClientID        = "admin-cli"
)

// realmManagementRoles are the realm-management client roles with their
// composites (AdminRoles.ALL_REALM_ROLES, RealmManager.setupRealmAdminManagement).
var realmManagementRoles = []struct {
	name       string
	composites []string
}{
	{"create-client", nil},
	{"impersonation", nil},
	{"manage-authorization", nil},
	{"manage-clients", nil},
	{"manage-events", nil},
	{"manage-identity-providers", nil},
	{"manage-realm", nil},
	{"manage-users", nil},
	{"query-clients", nil},
	{"query-groups", nil},
	{"query-realms", nil},
	{"query-users", nil},
	{"view-authorization", nil},
	{"view-clients", []string{"query-clients"}},
	{"view-events", nil},
	{"view-identity-providers", nil},
	{"view-realm", nil},
	{"view-users", []string{"query-users", "query-groups"}},
	{"realm-admin", []string{"create-client", "impersonation", "manage-authorization", "manage-clients",
		"manage-events", "manage-identity-providers", "manage-realm", "manage-users", "query-clients",
		"query-groups", "query-realms", "query-users", "view-authorization", "view-clients", "view-events",
		"view-identity-providers", "view-realm", "view-users"}},
}

// accountRoles are the account client roles (AccountRoles, RealmManager.setupAccountManagement).
var accountRoles = []struct {
	name       string
	composites []string
}{
	{"view-profile", nil},
	{"manage-account", []string{"manage-account-links"}},
	{"manage-account-links", nil},
	{"view-applications", nil},
	{"view-consent", nil},
	{"manage-consent", []string{"view-consent"}},
	{"delete-account", nil},
	{"view-groups", nil},
}

func boolMapper(name, mapperType string, cfg map[string]string) mapperRep {
	return mapperRep{Name: name, Protocol: "openid-connect", ProtocolMapper: mapperType, Config: cfg}
}

func attrMapper(name, attr, claim, jsonType string) mapperRep {
	return boolMapper(name, "oidc-usermodel-attribute-mapper", map[string]string{
		"user.attribute": attr, "claim.name": claim, "jsonType.label": jsonType,
		"id.token.claim": "true", "access.token.claim": "true", "userinfo.token.claim": "true",
		"introspection.token.claim": "true",
	})
}

// builtinClientScopes returns the client scopes a Keycloak 26 realm starts with
// (DefaultClientScopes.createDefaultClientScopes, OIDCLoginProtocolFactory.createDefaultClientScopesImpl).
func builtinClientScopes() []clientScopeRep {
	inToken := func(v, consent string) map[string]string {
		return map[string]string{"include.in.token.scope": v, "display.on.consent.screen": consent}
	}
	return []clientScopeRep{
		{Name: "profile", Description: "OpenID Connect built-in scope: profile", Protocol: "openid-connect",
			Attributes: inToken("true", "true"),
			ProtocolMappers: []mapperRep{
				attrMapper("username", "username", "preferred_username", "String"),
				boolMapper("full name", "oidc-full-name-mapper", map[string]string{
					"id.token.claim": "true", "access.token.claim": "true", "userinfo.token.claim": "true", "introspection.token.claim": "true"}),
				attrMapper("given name", "firstName", "given_name", "String"),
				attrMapper("family name", "lastName", "family_name", "String"),
				attrMapper("middle name", "middleName", "middle_name", "String"),
				attrMapper("nickname", "nickname", "nickname", "String"),
				attrMapper("profile", "profile", "profile", "String"),
				attrMapper("picture", "picture", "picture", "String"),
				attrMapper("website", "website", "website", "String"),
				attrMapper("gender", "gender", "gender", "String"),
				attrMapper("birthdate", "birthdate", "birthdate", "String"),
				attrMapper("zoneinfo", "zoneinfo", "zoneinfo", "String"),
				attrMapper("locale", "locale", "locale", "String"),
				attrMapper("updated at", "updatedAt", "updated_at", "long"),
			}},
		{Name: "email", Description: "OpenID Connect built-in scope: email", Protocol: "openid-connect",
			Attributes: inToken("true", "true"),
			ProtocolMappers: []mapperRep{
				attrMapper("email", "email", "email", "String"),
				boolMapper("email verified", "oidc-usermodel-property-mapper", map[string]string{
					"user.attribute": "emailVerified", "claim.name": "email_verified", "jsonType.label": "boolean",
					"id.token.claim": "true", "access.token.claim": "true", "userinfo.token.claim": "true", "introspection.token.claim": "true"}),
			}},
		{Name: "address", Description: "OpenID Connect built-in scope: address", Protocol: "openid-connect",
			Attributes: inToken("true", "true"),
			ProtocolMappers: []mapperRep{boolMapper("address", "oidc-address-mapper", map[string]string{
				"id.token.claim": "true", "access.token.claim": "true", "userinfo.token.claim": "true", "introspection.token.claim": "true"})}},
		{Name: "phone", Description: "OpenID Connect built-in scope: phone", Protocol: "openid-connect",
			Attributes: inToken("true", "true"),
			ProtocolMappers: []mapperRep{
				attrMapper("phone number", "phoneNumber", "phone_number", "String"),
				attrMapper("phone number verified", "phoneNumberVerified", "phone_number_verified", "boolean"),
			}},
		{Name: "roles", Description: "OpenID Connect scope for add user roles to the access token", Protocol: "openid-connect",
			Attributes: inToken("false", "true"),
			ProtocolMappers: []mapperRep{
				boolMapper("realm roles", "oidc-usermodel-realm-role-mapper", map[string]string{
					"user.attribute": "foo", "claim.name": "realm_access.roles", "jsonType.label": "String",
					"multivalued": "true", "access.token.claim": "true", "introspection.token.claim": "true"}),
				boolMapper("client roles", "oidc-usermodel-client-role-mapper", map[string]string{
					"user.attribute": "foo", "claim.name": "resource_access.${client_id}.roles", "jsonType.label": "String",
					"multivalued": "true", "access.token.claim": "true", "introspection.token.claim": "true"}),
				boolMapper("audience resolve", "oidc-audience-resolve-mapper", map[string]string{
					"access.token.claim": "true", "introspection.token.claim": "true"}),
			}},
		{Name: "web-origins", Description: "OpenID Connect scope for add allowed web origins to the access token", Protocol: "openid-connect",
			Attributes: inToken("false", "false"),
			ProtocolMappers: []mapperRep{boolMapper("allowed web origins", "oidc-allowed-origins-mapper", map[string]string{
				"access.token.claim": "true", "introspection.token.claim": "true"})}},
		{Name: "microprofile-jwt", Description: "Microprofile - JWT built-in scope", Protocol: "openid-connect",
			Attributes: inToken("true", "false"),
			ProtocolMappers: []mapperRep{
				attrMapper("upn", "username", "upn", "String"),
				boolMapper("groups", "oidc-usermodel-realm-role-mapper", map[string]string{
					"user.attribute": "foo", "claim.name": "groups", "jsonType.label": "String", "multivalued": "true",
					"id.token.claim": "true", "access.token.claim": "true", "userinfo.token.claim": "true", "introspection.token.claim": "true"}),
			}},
		acrScope(),
		basicScope(),
		{Name: "offline_access", Description: "OpenID Connect built-in scope: offline_access", Protocol: "openid-connect",
			Attributes: map[string]string{"consent.screen.text": "${offlineAccessScopeConsentText}", "display.on.consent.screen": "true"}},
		{Name: "role_list", Description: "SAML role list", Protocol: "saml",
			Attributes: map[string]string{"consent.screen.text": "${samlRoleListScopeConsentText}", "display.on.consent.screen": "true"}},
	}
}

// acrScope is added by MigrateTo18_0_0 when missing (OIDCLoginProtocolFactory.createAcrClientScope).
func acrScope() clientScopeRep {
	return clientScopeRep{Name: "acr", Description: "OpenID Connect scope for add acr (authentication context class reference) to the token",
		Protocol:   "openid-connect",
		Attributes: map[string]string{"include.in.token.scope": "false", "display.on.consent.screen": "false"},
		ProtocolMappers: []mapperRep{boolMapper("acr loa level", "oidc-acr-mapper", map[string]string{
			"id.token.claim": "true", "access.token.claim": "true", "introspection.token.claim": "true"})}}
}

// basicScope is added by MigrateTo25_0_0 when missing (OIDCLoginProtocolFactory.createBasicClientScope):
// from Keycloak 25 "sub" and "auth_time" come from these mappers.
func basicScope() clientScopeRep {
	return clientScopeRep{Name: "basic", Description: "OpenID Connect scope for add all basic claims to the token",
		Protocol:   "openid-connect",
		Attributes: map[string]string{"include.in.token.scope": "false", "display.on.consent.screen": "false"},
		ProtocolMappers: []mapperRep{
			boolMapper("sub", "oidc-sub-mapper", map[string]string{"access.token.claim": "true", "introspection.token.claim": "true"}),
			boolMapper("auth_time", "oidc-usersessionmodel-note-mapper", map[string]string{
				"user.session.note": "AUTH_TIME", "claim.name": "auth_time", "jsonType.label": "long",
				"id.token.claim": "true", "access.token.claim": "true", "introspection.token.claim": "true"}),
		}}
}

// defaultClientScopeNames are the realm default-default scopes of a new realm.
var defaultClientScopeNames = []string{"role_list", "profile", "email", "roles", "web-origins", "acr", "basic"}

// optionalClientScopeNames are the realm default-optional scopes of a new realm.
var optionalClientScopeNames = []string{"offline_access", "address", "phone", "microprofile-jwt"}

// builtinClients are created when an import lacks them (RealmManager.importRealm).
func builtinClients(realmName string) []clientRep {
	f, t := false, true
	return []clientRep{
		{ClientID: accountClientID, Name: "${client_account}", PublicClient: &t, BaseURL: "/realms/" + realmName + "/account/",
			StandardFlowEnabled: &t, DirectAccessGrantsEnabled: &f, FullScopeAllowed: &f},
		{ClientID: "account-console", Name: "${client_account-console}", PublicClient: &t, BaseURL: "/realms/" + realmName + "/account/",
			StandardFlowEnabled: &t, DirectAccessGrantsEnabled: &f, FullScopeAllowed: &f},
		{ClientID: adminCLIClientID, Name: "${client_admin-cli}", PublicClient: &t, StandardFlowEnabled: &f,
			DirectAccessGrantsEnabled: &t, FullScopeAllowed: &t},
		{ClientID: "broker", Name: "${client_broker}", BearerOnly: &t, PublicClient: &f, StandardFlowEnabled: &t, FullScopeAllowed: &f},
		{ClientID: realmManagementClientID, Name: "${client_realm-management}", BearerOnly: &t, PublicClient: &f,
			StandardFlowEnabled: &t, FullScopeAllowed: &f},
		{ClientID: "security-admin-console", Name: "${client_security-admin-console}", PublicClient: &t,
			BaseURL: "/admin/" + realmName + "/console/", StandardFlowEnabled: &t, DirectAccessGrantsEnabled: &f, FullScopeAllowed: &f},
	}
}
