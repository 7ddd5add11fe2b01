package keycloaktest

import "encoding/json"

// JSON representations as Keycloak reads and writes them
// (core/src/main/java/org/keycloak/representations/idm/*Representation.java).
// Pointer fields distinguish "absent" from "zero", which Keycloak's PUT
// semantics depend on.

type realmRep struct {
	ID                           string                     `json:"id,omitempty"`
	Realm                        string                     `json:"realm"`
	DisplayName                  string                     `json:"displayName,omitempty"`
	Enabled                      *bool                      `json:"enabled,omitempty"`
	NotBefore                    *int64                     `json:"notBefore,omitempty"`
	RevokeRefreshToken           *bool                      `json:"revokeRefreshToken,omitempty"`
	RefreshTokenMaxReuse         *int                       `json:"refreshTokenMaxReuse,omitempty"`
	AccessTokenLifespan          *int                       `json:"accessTokenLifespan,omitempty"`
	SsoSessionIdleTimeout        *int                       `json:"ssoSessionIdleTimeout,omitempty"`
	SsoSessionMaxLifespan        *int                       `json:"ssoSessionMaxLifespan,omitempty"`
	LoginWithEmailAllowed        *bool                      `json:"loginWithEmailAllowed,omitempty"`
	DuplicateEmailsAllowed       *bool                      `json:"duplicateEmailsAllowed,omitempty"`
	EditUsernameAllowed          *bool                      `json:"editUsernameAllowed,omitempty"`
	BruteForceProtected          *bool                      `json:"bruteForceProtected,omitempty"`
	PermanentLockout             *bool                      `json:"permanentLockout,omitempty"`
	MaxTemporaryLockouts         *int                       `json:"maxTemporaryLockouts,omitempty"`
	BruteForceStrategy           *string                    `json:"bruteForceStrategy,omitempty"`
	FailureFactor                *int                       `json:"failureFactor,omitempty"`
	WaitIncrementSeconds         *int                       `json:"waitIncrementSeconds,omitempty"`
	MaxFailureWaitSeconds        *int                       `json:"maxFailureWaitSeconds,omitempty"`
	MinimumQuickLoginWaitSeconds *int                       `json:"minimumQuickLoginWaitSeconds,omitempty"`
	QuickLoginCheckMilliSeconds  *int64                     `json:"quickLoginCheckMilliSeconds,omitempty"`
	MaxDeltaTimeSeconds          *int                       `json:"maxDeltaTimeSeconds,omitempty"`
	Users                        []userRep                  `json:"users,omitempty"`
	Clients                      []clientRep                `json:"clients,omitempty"`
	ClientScopes                 []clientScopeRep           `json:"clientScopes,omitempty"`
	Roles                        *rolesRep                  `json:"roles,omitempty"`
	Groups                       []groupRep                 `json:"groups,omitempty"`
	DefaultRole                  *roleRep                   `json:"defaultRole,omitempty"`
	DefaultRoles                 []string                   `json:"defaultRoles,omitempty"`
	DefaultDefaultClientScopes   []string                   `json:"defaultDefaultClientScopes,omitempty"`
	DefaultOptionalClientScopes  []string                   `json:"defaultOptionalClientScopes,omitempty"`
	Components                   map[string][]componentRep  `json:"components,omitempty"`
	RequiredActions              []requiredActionRep        `json:"requiredActions,omitempty"`
	Attributes                   map[string]json.RawMessage `json:"attributes,omitempty"`
}

type requiredActionRep struct {
	Alias   string `json:"alias"`
	Enabled bool   `json:"enabled"`
}

type componentRep struct {
	ID           string                    `json:"id,omitempty"`
	Name         string                    `json:"name,omitempty"`
	ProviderID   string                    `json:"providerId,omitempty"`
	SubType      string                    `json:"subType,omitempty"`
	Config       map[string][]string       `json:"config,omitempty"`
	SubComponent map[string][]componentRep `json:"subComponents,omitempty"`
}

type rolesRep struct {
	Realm  []roleRep            `json:"realm,omitempty"`
	Client map[string][]roleRep `json:"client,omitempty"`
}

type roleRep struct {
	ID          string              `json:"id,omitempty"`
	Name        string              `json:"name"`
	Description string              `json:"description,omitempty"`
	Composite   bool                `json:"composite"`
	Composites  *compositesRep      `json:"composites,omitempty"`
	ClientRole  bool                `json:"clientRole"`
	ContainerID string              `json:"containerId,omitempty"`
	Attributes  map[string][]string `json:"attributes"`
}

type compositesRep struct {
	Realm  []string            `json:"realm,omitempty"`
	Client map[string][]string `json:"client,omitempty"`
}

type credentialRep struct {
	ID             string `json:"id,omitempty"`
	Type           string `json:"type,omitempty"`
	Value          string `json:"value,omitempty"`
	Temporary      *bool  `json:"temporary,omitempty"`
	CreatedDate    int64  `json:"createdDate,omitempty"`
	SecretData     string `json:"secretData,omitempty"`
	CredentialData string `json:"credentialData,omitempty"`
	// Legacy (pre-11) export fields.
	HashedSaltedValue string `json:"hashedSaltedValue,omitempty"`
	Salt              string `json:"salt,omitempty"`
	HashIterations    int    `json:"hashIterations,omitempty"`
	Algorithm         string `json:"algorithm,omitempty"`
}

type userRep struct {
	ID                         string              `json:"id,omitempty"`
	CreatedTimestamp           int64               `json:"createdTimestamp,omitempty"`
	Username                   *string             `json:"username,omitempty"`
	Enabled                    *bool               `json:"enabled,omitempty"`
	Totp                       *bool               `json:"totp,omitempty"`
	EmailVerified              *bool               `json:"emailVerified,omitempty"`
	FirstName                  *string             `json:"firstName,omitempty"`
	LastName                   *string             `json:"lastName,omitempty"`
	Email                      *string             `json:"email,omitempty"`
	Attributes                 map[string][]string `json:"attributes,omitempty"`
	Credentials                []credentialRep     `json:"credentials,omitempty"`
	RequiredActions            []string            `json:"requiredActions,omitempty"`
	RealmRoles                 []string            `json:"realmRoles,omitempty"`
	ClientRoles                map[string][]string `json:"clientRoles,omitempty"`
	Groups                     []string            `json:"groups,omitempty"`
	ServiceAccountClientID     string              `json:"serviceAccountClientId,omitempty"`
	NotBefore                  *int64              `json:"notBefore,omitempty"`
	DisableableCredentialTypes []string            `json:"disableableCredentialTypes,omitempty"`
}

type clientRep struct {
	ID                           string            `json:"id,omitempty"`
	ClientID                     string            `json:"clientId"`
	Name                         string            `json:"name,omitempty"`
	Description                  string            `json:"description,omitempty"`
	RootURL                      string            `json:"rootUrl,omitempty"`
	BaseURL                      string            `json:"baseUrl,omitempty"`
	Enabled                      *bool             `json:"enabled,omitempty"`
	ClientAuthenticatorType      string            `json:"clientAuthenticatorType,omitempty"`
	Secret                       string            `json:"secret,omitempty"`
	RedirectURIs                 []string          `json:"redirectUris,omitempty"`
	WebOrigins                   []string          `json:"webOrigins,omitempty"`
	BearerOnly                   *bool             `json:"bearerOnly,omitempty"`
	ConsentRequired              *bool             `json:"consentRequired,omitempty"`
	StandardFlowEnabled          *bool             `json:"standardFlowEnabled,omitempty"`
	ImplicitFlowEnabled          *bool             `json:"implicitFlowEnabled,omitempty"`
	DirectAccessGrantsEnabled    *bool             `json:"directAccessGrantsEnabled,omitempty"`
	ServiceAccountsEnabled       *bool             `json:"serviceAccountsEnabled,omitempty"`
	PublicClient                 *bool             `json:"publicClient,omitempty"`
	FullScopeAllowed             *bool             `json:"fullScopeAllowed,omitempty"`
	Protocol                     string            `json:"protocol,omitempty"`
	Attributes                   map[string]string `json:"attributes,omitempty"`
	ProtocolMappers              []mapperRep       `json:"protocolMappers,omitempty"`
	DefaultClientScopes          []string          `json:"defaultClientScopes,omitempty"`
	OptionalClientScopes         []string          `json:"optionalClientScopes,omitempty"`
	NodeReRegistrationTimeout    *int              `json:"nodeReRegistrationTimeout,omitempty"`
	FrontchannelLogout           *bool             `json:"frontchannelLogout,omitempty"`
	SurrogateAuthRequired        *bool             `json:"surrogateAuthRequired,omitempty"`
	AuthorizationServicesEnabled *bool             `json:"authorizationServicesEnabled,omitempty"`
}

type clientScopeRep struct {
	ID              string            `json:"id,omitempty"`
	Name            string            `json:"name"`
	Description     string            `json:"description,omitempty"`
	Protocol        string            `json:"protocol,omitempty"`
	Attributes      map[string]string `json:"attributes,omitempty"`
	ProtocolMappers []mapperRep       `json:"protocolMappers,omitempty"`
}

type mapperRep struct {
	ID              string            `json:"id,omitempty"`
	Name            string            `json:"name"`
	Protocol        string            `json:"protocol,omitempty"`
	ProtocolMapper  string            `json:"protocolMapper"`
	ConsentRequired bool              `json:"consentRequired"`
	Config          map[string]string `json:"config"`
}

type groupRep struct {
	ID          string              `json:"id,omitempty"`
	Name        string              `json:"name"`
	Path        string              `json:"path,omitempty"`
	Attributes  map[string][]string `json:"attributes,omitempty"`
	RealmRoles  []string            `json:"realmRoles,omitempty"`
	ClientRoles map[string][]string `json:"clientRoles,omitempty"`
	SubGroups   []groupRep          `json:"subGroups"`
}
