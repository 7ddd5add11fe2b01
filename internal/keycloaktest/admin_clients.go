package keycloaktest

import (
	"net/http"
	"strings"
)

func (s *Server) mapperToRep(m *protocolMapper) map[string]any {
	cfg := m.config
	if cfg == nil {
		cfg = map[string]string{}
	}
	return map[string]any{"id": m.id, "name": m.name, "protocol": m.protocol, "protocolMapper": m.mapperType,
		"consentRequired": m.consentRequired, "config": cfg}
}

func (s *Server) scopeNames(r *realm, ids []string) []string {
	out := []string{}
	for _, id := range ids {
		if sc := r.scopes[id]; sc != nil {
			out = append(out, sc.name)
		}
	}
	return out
}

// clientToRep is ModelToRepresentation.toRepresentation(ClientModel); the
// secret is included for callers that may view clients.
func (s *Server) clientToRep(r *realm, c *client) map[string]any {
	mappers := []any{}
	for _, m := range c.mappers {
		mappers = append(mappers, s.mapperToRep(m))
	}
	out := map[string]any{
		"id": c.id, "clientId": c.clientID, "name": c.name, "description": c.description,
		"rootUrl": c.rootURL, "baseUrl": c.baseURL, "surrogateAuthRequired": false, "enabled": c.enabled,
		"alwaysDisplayInConsole": false, "clientAuthenticatorType": c.authenticatorType,
		"redirectUris": nonNil(c.redirectURIs), "webOrigins": nonNil(c.webOrigins), "notBefore": 0,
		"bearerOnly": c.bearerOnly, "consentRequired": c.consentRequired, "standardFlowEnabled": c.standardFlow,
		"implicitFlowEnabled": c.implicitFlow, "directAccessGrantsEnabled": c.directAccessGrants,
		"serviceAccountsEnabled": c.serviceAccounts, "publicClient": c.publicClient, "frontchannelLogout": true,
		"protocol": c.protocol, "attributes": c.attributes, "fullScopeAllowed": c.fullScopeAllowed,
		"nodeReRegistrationTimeout": -1, "protocolMappers": mappers,
		"defaultClientScopes": s.scopeNames(r, c.defaultScopes), "optionalClientScopes": s.scopeNames(r, c.optionalScopes),
		"access": map[string]bool{"view": true, "configure": true, "manage": true},
	}
	if !c.publicClient && !c.bearerOnly && c.secret != "" {
		out["secret"] = c.secret
	}
	return out
}

func (a *adminRequest) clients(seg []string) error {
	r := a.r
	if len(seg) == 0 {
		switch a.method() {
		case http.MethodGet:
			// ClientsResource.getClients: query-clients alone lists nothing it may not view.
			if !a.caller.can("view-clients") {
				if a.caller.can("query-clients") {
					return a.json(http.StatusOK, []any{})
				}
				return errForbidden
			}
			want := a.query("clientId")
			search := a.query("search") == "true"
			out := []any{}
			for _, c := range r.sortedClients() {
				if want != "" {
					if search && !strings.Contains(strings.ToLower(c.clientID), strings.ToLower(want)) {
						continue
					}
					if !search && c.clientID != want {
						continue
					}
				}
				out = append(out, a.s.clientToRep(r, c))
			}
			return a.json(http.StatusOK, page(out, a.intQuery("first", 0), a.intQuery("max", -1)))
		case http.MethodPost:
			if err := a.need("manage-clients"); err != nil {
				return err
			}
			var rep clientRep
			if err := decodeBody(a.req, &rep); err != nil {
				return err
			}
			if r.clientByClientID(rep.ClientID) != nil {
				return errorMessage(http.StatusConflict, "Client "+rep.ClientID+" already exists")
			}
			if rep.ID != "" && r.clients[rep.ID] != nil {
				rep.ID = ""
			}
			c, err := a.s.addClient(r, &rep)
			if err != nil {
				return errorMessage(http.StatusBadRequest, err.Error())
			}
			return a.created("clients/" + c.id)
		}
		return errBadMethod
	}
	c := r.clients[seg[0]]
	if c == nil {
		return errorBody(http.StatusNotFound, "Could not find client")
	}
	if len(seg) == 1 {
		switch a.method() {
		case http.MethodGet:
			if err := a.need("view-clients"); err != nil {
				return err
			}
			return a.json(http.StatusOK, a.s.clientToRep(r, c))
		case http.MethodPut:
			if err := a.need("manage-clients"); err != nil {
				return err
			}
			var rep clientRep
			if err := decodeBody(a.req, &rep); err != nil {
				return err
			}
			if rep.ClientID == "" {
				rep.ClientID = c.clientID
			}
			if other := r.clientByClientID(rep.ClientID); other != nil && other != c {
				return errorMessage(http.StatusConflict, "Client "+rep.ClientID+" already exists")
			}
			a.s.applyClientRep(r, c, &rep, false)
			if c.serviceAccounts && !c.publicClient {
				a.s.ensureServiceAccount(r, c)
			}
			return a.noContent()
		case http.MethodDelete:
			if err := a.need("manage-clients"); err != nil {
				return err
			}
			delete(r.clients, c.id)
			for id, u := range r.users {
				if u.serviceAccountFor == c.id {
					delete(r.users, id)
				}
			}
			for id, ro := range r.roles {
				if ro.clientRole && ro.container == c.id {
					delete(r.roles, id)
				}
			}
			return a.noContent()
		}
		return errBadMethod
	}
	switch seg[1] {
	case "client-secret":
		if c.publicClient || c.bearerOnly {
			if err := a.need("view-clients"); err != nil {
				return err
			}
			return errorBody(http.StatusBadRequest, "unsupported_client_type")
		}
		switch a.method() {
		case http.MethodGet:
			if err := a.need("view-clients"); err != nil {
				return err
			}
		case http.MethodPost:
			if err := a.need("manage-clients"); err != nil {
				return err
			}
			c.secret = a.s.newSecret()
		default:
			return errBadMethod
		}
		return a.json(http.StatusOK, map[string]string{"type": "secret", "value": c.secret})
	case "service-account-user":
		if err := a.need("view-clients"); err != nil {
			return err
		}
		for _, u := range r.users {
			if u.serviceAccountFor == c.id {
				return a.json(http.StatusOK, a.s.userToRep(r, u, contextAdmin, false))
			}
		}
		return errorBody(http.StatusBadRequest, "Service account not enabled for the client '"+c.clientID+"'")
	case "roles":
		return a.roleContainer(seg[2:], c.id, "clients/"+c.id+"/roles")
	case "default-client-scopes":
		return a.clientScopeLinks(c, seg[2:], &c.defaultScopes, &c.optionalScopes)
	case "optional-client-scopes":
		return a.clientScopeLinks(c, seg[2:], &c.optionalScopes, &c.defaultScopes)
	case "protocol-mappers":
		if err := a.need("view-clients"); err != nil {
			return err
		}
		return a.protocolMappers(&c.mappers, seg[2:], "clients/"+c.id)
	}
	return errNoResource
}

// clientScopeLinks is ClientResource default-client-scopes / optional-client-scopes:
// PUT and DELETE {scopeId} answer 204, 404 for an unknown scope.
func (a *adminRequest) clientScopeLinks(c *client, seg []string, list, other *[]string) error {
	r := a.r
	if len(seg) == 0 && a.method() == http.MethodGet {
		if err := a.need("view-clients"); err != nil {
			return err
		}
		out := []any{}
		for _, id := range *list {
			if sc := r.scopes[id]; sc != nil {
				out = append(out, map[string]string{"id": sc.id, "name": sc.name})
			}
		}
		return a.json(http.StatusOK, out)
	}
	if len(seg) != 1 || (a.method() != http.MethodPut && a.method() != http.MethodDelete) {
		return errNoResource
	}
	if err := a.need("manage-clients"); err != nil {
		return err
	}
	sc := r.scopes[seg[0]]
	if sc == nil {
		return errorBody(http.StatusNotFound, "Client scope not found")
	}
	if a.method() == http.MethodPut {
		if sc.protocol != c.protocol {
			return errorMessage(http.StatusBadRequest, "Protocol mismatch")
		}
		for _, id := range *other {
			if id == sc.id {
				return errorMessage(http.StatusConflict, "Client scope "+sc.name+" already linked to client "+c.clientID)
			}
		}
		*list = appendMissing(*list, sc.id)
	} else {
		*list = removeID(*list, sc.id)
	}
	return a.noContent()
}

func (s *Server) scopeToRep(sc *clientScope) map[string]any {
	mappers := []any{}
	for _, m := range sc.mappers {
		mappers = append(mappers, s.mapperToRep(m))
	}
	out := map[string]any{"id": sc.id, "name": sc.name, "protocol": sc.protocol, "attributes": sc.attributes}
	if sc.description != "" {
		out["description"] = sc.description
	}
	if len(mappers) > 0 {
		out["protocolMappers"] = mappers
	}
	return out
}

func (a *adminRequest) clientScopes(seg []string) error {
	r := a.r
	if len(seg) == 0 {
		switch a.method() {
		case http.MethodGet:
			if err := a.need("view-clients"); err != nil {
				return err
			}
			out := []any{}
			for _, sc := range r.sortedScopes() {
				out = append(out, a.s.scopeToRep(sc))
			}
			return a.json(http.StatusOK, out)
		case http.MethodPost:
			if err := a.need("manage-clients"); err != nil {
				return err
			}
			var rep clientScopeRep
			if err := decodeBody(a.req, &rep); err != nil {
				return err
			}
			if strings.TrimSpace(rep.Name) == "" || strings.ContainsAny(rep.Name, " \t") {
				return errorMessage(http.StatusBadRequest, "Unexpected name \""+rep.Name+"\" for ClientScope")
			}
			if r.scopeByName(rep.Name) != nil {
				return errorMessage(http.StatusConflict, "Client Scope "+rep.Name+" already exists")
			}
			if rep.ID != "" && r.scopes[rep.ID] != nil {
				rep.ID = ""
			}
			sc := a.s.addScope(r, &rep)
			return a.created("client-scopes/" + sc.id)
		}
		return errBadMethod
	}
	sc := r.scopes[seg[0]]
	if sc == nil {
		return errorBody(http.StatusNotFound, "Could not find client scope")
	}
	if len(seg) == 1 {
		switch a.method() {
		case http.MethodGet:
			if err := a.need("view-clients"); err != nil {
				return err
			}
			return a.json(http.StatusOK, a.s.scopeToRep(sc))
		case http.MethodPut:
			if err := a.need("manage-clients"); err != nil {
				return err
			}
			var rep clientScopeRep
			if err := decodeBody(a.req, &rep); err != nil {
				return err
			}
			if rep.Name != "" && rep.Name != sc.name {
				if r.scopeByName(rep.Name) != nil {
					return errorMessage(http.StatusConflict, "Client Scope "+rep.Name+" already exists")
				}
				sc.name = rep.Name
			}
			sc.description = rep.Description
			if rep.Protocol != "" {
				sc.protocol = rep.Protocol
			}
			if rep.Attributes != nil {
				sc.attributes = rep.Attributes
			}
			return a.noContent()
		case http.MethodDelete:
			if err := a.need("manage-clients"); err != nil {
				return err
			}
			for _, c := range r.clients {
				for _, id := range append(append([]string(nil), c.defaultScopes...), c.optionalScopes...) {
					if id == sc.id {
						return errorMessage(http.StatusBadRequest, "Cannot remove client scope, it is currently in use")
					}
				}
			}
			delete(r.scopes, sc.id)
			r.defaultDefaultScopes = removeID(r.defaultDefaultScopes, sc.id)
			r.defaultOptionalScopes = removeID(r.defaultOptionalScopes, sc.id)
			return a.noContent()
		}
		return errBadMethod
	}
	if seg[1] == "protocol-mappers" {
		if err := a.need("view-clients"); err != nil {
			return err
		}
		return a.protocolMappers(&sc.mappers, seg[2:], "client-scopes/"+sc.id)
	}
	return errNoResource
}

// protocolMappers is ProtocolMappersResource: models list/create (409 on a
// duplicate name), models/{id} get/update/delete.
func (a *adminRequest) protocolMappers(list *[]*protocolMapper, seg []string, base string) error {
	if len(seg) == 0 || seg[0] != "models" {
		return errNoResource
	}
	if len(seg) == 1 {
		switch a.method() {
		case http.MethodGet:
			out := []any{}
			for _, m := range *list {
				out = append(out, a.s.mapperToRep(m))
			}
			return a.json(http.StatusOK, out)
		case http.MethodPost:
			if err := a.need("manage-clients"); err != nil {
				return err
			}
			var rep mapperRep
			if err := decodeBody(a.req, &rep); err != nil {
				return err
			}
			for _, m := range *list {
				if m.name == rep.Name {
					return errorMessage(http.StatusConflict, "Protocol mapper exists with same name")
				}
			}
			rep.ID = ""
			m := a.s.newMapper(rep)
			*list = append(*list, m)
			return a.created(base + "/protocol-mappers/models/" + m.id)
		}
		return errBadMethod
	}
	var m *protocolMapper
	idx := -1
	for i, x := range *list {
		if x.id == seg[1] {
			m, idx = x, i
		}
	}
	if m == nil {
		return errorBody(http.StatusNotFound, "Model not found")
	}
	switch a.method() {
	case http.MethodGet:
		return a.json(http.StatusOK, a.s.mapperToRep(m))
	case http.MethodPut:
		if err := a.need("manage-clients"); err != nil {
			return err
		}
		var rep mapperRep
		if err := decodeBody(a.req, &rep); err != nil {
			return err
		}
		if rep.Name != "" {
			m.name = rep.Name
		}
		if rep.ProtocolMapper != "" {
			m.mapperType = rep.ProtocolMapper
		}
		m.consentRequired = rep.ConsentRequired
		if rep.Config != nil {
			m.config = map[string]string{}
			for k, v := range rep.Config {
				m.config[k] = v
			}
		}
		return a.noContent()
	case http.MethodDelete:
		if err := a.need("manage-clients"); err != nil {
			return err
		}
		*list = append((*list)[:idx], (*list)[idx+1:]...)
		return a.noContent()
	}
	return errBadMethod
}
