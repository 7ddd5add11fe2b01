package keycloaktest

import (
	"io"
	"net/http"
	"sort"
	"strings"
)

// Roles, role mappings, groups, clients and client scopes:
// services/src/main/java/org/keycloak/services/resources/admin/RoleContainerResource.java,
// RoleMapperResource.java, ClientRoleMappingsResource.java, UserResource.java (groups),
// GroupsResource.java, ClientsResource.java, ClientResource.java,
// ClientScopesResource.java, ClientScopeResource.java, ProtocolMappersResource.java.

func readAll(req *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(req.Body, 10<<20))
	if err != nil {
		return nil, errorBody(http.StatusBadRequest, "unable to read contents from stream")
	}
	return b, nil
}

func (s *Server) roleToRep(r *realm, ro *role) map[string]any {
	attrs := ro.attributes
	if attrs == nil {
		attrs = map[string][]string{}
	}
	return map[string]any{"id": ro.id, "name": ro.name, "description": ro.description,
		"composite": len(ro.composites) > 0, "clientRole": ro.clientRole, "containerId": ro.container,
		"attributes": attrs}
}

func (s *Server) rolesToRep(r *realm, ids map[string]bool, clientUUID string) []any {
	var roles []*role
	for id := range ids {
		ro := r.roles[id]
		if ro == nil {
			continue
		}
		if clientUUID == "" && ro.clientRole || clientUUID != "" && (!ro.clientRole || ro.container != clientUUID) {
			continue
		}
		roles = append(roles, ro)
	}
	sort.Slice(roles, func(i, j int) bool { return roles[i].name < roles[j].name })
	out := []any{}
	for _, ro := range roles {
		out = append(out, s.roleToRep(r, ro))
	}
	return out
}

// roleMappings serves .../role-mappings[/realm|/clients/{uuid}][/composite|/available].
func (a *adminRequest) roleMappings(mapped map[string]bool, seg []string, managePerm string) error {
	r := a.r
	if len(seg) == 0 {
		if a.method() != http.MethodGet {
			return errBadMethod
		}
		out := map[string]any{}
		if realm := a.s.rolesToRep(r, mapped, ""); len(realm) > 0 {
			out["realmMappings"] = realm
		}
		cm := map[string]any{}
		for _, c := range r.sortedClients() {
			if roles := a.s.rolesToRep(r, mapped, c.id); len(roles) > 0 {
				cm[c.clientID] = map[string]any{"id": c.id, "client": c.clientID, "mappings": roles}
			}
		}
		if len(cm) > 0 {
			out["clientMappings"] = cm
		}
		return a.json(http.StatusOK, out)
	}
	clientUUID := ""
	rest := seg[1:]
	switch seg[0] {
	case "realm":
	case "clients":
		if len(seg) < 2 {
			return errNoResource
		}
		if r.clients[seg[1]] == nil {
			return errorBody(http.StatusNotFound, "Client not found")
		}
		clientUUID = seg[1]
		rest = seg[2:]
	default:
		return errNoResource
	}
	if len(rest) == 1 && a.method() == http.MethodGet {
		switch rest[0] {
		case "composite":
			return a.json(http.StatusOK, a.s.rolesToRep(r, r.expandRoles(mapped), clientUUID))
		case "available":
			avail := map[string]bool{}
			for id := range r.roles {
				if !mapped[id] {
					avail[id] = true
				}
			}
			return a.json(http.StatusOK, a.s.rolesToRep(r, avail, clientUUID))
		}
	}
	if len(rest) != 0 {
		return errNoResource
	}
	switch a.method() {
	case http.MethodGet:
		return a.json(http.StatusOK, a.s.rolesToRep(r, mapped, clientUUID))
	case http.MethodPost, http.MethodDelete:
		if err := a.need(managePerm); err != nil {
			return err
		}
		var reps []roleRep
		if err := decodeBody(a.req, &reps); err != nil {
			return err
		}
		var ids []string
		for _, rr := range reps {
			var ro *role
			if clientUUID == "" {
				ro = r.realmRole(rr.Name)
			} else {
				ro = r.clientRole(clientUUID, rr.Name)
			}
			if ro == nil && rr.ID != "" {
				if cand := r.roles[rr.ID]; cand != nil && (cand.clientRole == (clientUUID != "")) {
					ro = cand
				}
			}
			if ro == nil || (rr.ID != "" && ro.id != rr.ID) {
				return errorBody(http.StatusNotFound, "Role not found")
			}
			// RolePermissions.canMapRole: admin roles need more than manage-users.
			if rm := r.clientByClientID(realmManagementClientID); rm != nil && ro.container == rm.id && !a.caller.superuser && !a.caller.can("manage-realm") {
				return errForbidden
			}
			ids = append(ids, ro.id)
		}
		for _, id := range ids {
			if a.method() == http.MethodPost {
				mapped[id] = true
			} else {
				delete(mapped, id)
			}
		}
		return a.noContent()
	}
	return errBadMethod
}

func (s *Server) groupToRep(r *realm, g *group, withSubs bool) map[string]any {
	attrs := g.attributes
	if attrs == nil {
		attrs = map[string][]string{}
	}
	out := map[string]any{"id": g.id, "name": g.name, "path": r.groupPath(g), "attributes": attrs,
		"realmRoles": []string{}, "clientRoles": map[string]any{}}
	if g.parent != "" {
		out["parentId"] = g.parent
	}
	var subs []any
	count := 0
	for _, sg := range r.sortedGroups(g.id) {
		count++
		if withSubs {
			subs = append(subs, s.groupToRep(r, sg, true))
		}
	}
	out["subGroupCount"] = count
	if subs == nil {
		subs = []any{}
	}
	out["subGroups"] = subs
	return out
}

func (r *realm) sortedGroups(parent string) []*group {
	var out []*group
	for _, g := range r.groups {
		if g.parent == parent {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (a *adminRequest) groups(seg []string) error {
	r := a.r
	if len(seg) == 0 {
		switch a.method() {
		case http.MethodGet:
			if err := a.need("query-users"); err != nil && !a.caller.can("query-groups") {
				return err
			}
			out := []any{}
			for _, g := range r.sortedGroups("") {
				if v := a.query("search"); v != "" && !strings.Contains(strings.ToLower(g.name), strings.ToLower(v)) {
					continue
				}
				out = append(out, a.s.groupToRep(r, g, true))
			}
			return a.json(http.StatusOK, out)
		case http.MethodPost:
			if err := a.need("manage-users"); err != nil {
				return err
			}
			var rep groupRep
			if err := decodeBody(a.req, &rep); err != nil {
				return err
			}
			for _, g := range r.sortedGroups("") {
				if g.name == rep.Name {
					return errorMessage(http.StatusConflict, "Top level group named '"+rep.Name+"' already exists.")
				}
			}
			rep.ID = ""
			rep.SubGroups = nil
			a.s.addGroup(r, &rep, "")
			for _, g := range r.sortedGroups("") {
				if g.name == rep.Name {
					return a.created("groups/" + g.id)
				}
			}
		}
		return errBadMethod
	}
	g := r.groups[seg[0]]
	if g == nil {
		return errorBody(http.StatusNotFound, "Could not find group by id")
	}
	if len(seg) == 1 {
		switch a.method() {
		case http.MethodGet:
			if err := a.need("view-users"); err != nil {
				return err
			}
			return a.json(http.StatusOK, a.s.groupToRep(r, g, true))
		case http.MethodDelete:
			if err := a.need("manage-users"); err != nil {
				return err
			}
			delete(r.groups, g.id)
			for _, u := range r.users {
				delete(u.groups, g.id)
			}
			return a.noContent()
		}
		return errBadMethod
	}
	switch seg[1] {
	case "role-mappings":
		return a.roleMappings(g.roles, seg[2:], "manage-users")
	case "members":
		if err := a.need("view-users"); err != nil {
			return err
		}
		out := []any{}
		for _, u := range r.sortedUsers() {
			if u.groups[g.id] {
				out = append(out, a.s.userToRep(r, u, contextAdmin, false))
			}
		}
		return a.json(http.StatusOK, out)
	}
	return errNoResource
}

func (a *adminRequest) userGroups(u *user, seg []string) error {
	r := a.r
	if len(seg) == 0 && a.method() == http.MethodGet {
		out := []any{}
		var gs []*group
		for gid := range u.groups {
			if g := r.groups[gid]; g != nil {
				gs = append(gs, g)
			}
		}
		sort.Slice(gs, func(i, j int) bool { return r.groupPath(gs[i]) < r.groupPath(gs[j]) })
		for _, g := range gs {
			out = append(out, a.s.groupToRep(r, g, false))
		}
		return a.json(http.StatusOK, out)
	}
	if len(seg) == 1 && seg[0] == "count" {
		return a.json(http.StatusOK, map[string]int{"count": len(u.groups)})
	}
	if len(seg) == 1 && (a.method() == http.MethodPut || a.method() == http.MethodDelete) {
		if err := a.need("manage-users"); err != nil {
			return err
		}
		g := r.groups[seg[0]]
		if g == nil {
			return errorBody(http.StatusNotFound, "Group not found")
		}
		if a.method() == http.MethodPut {
			u.groups[g.id] = true
		} else {
			delete(u.groups, g.id)
		}
		return a.noContent()
	}
	return errNoResource
}

// realmRoles is RoleContainerResource for the realm.
func (a *adminRequest) realmRoles(seg []string) error {
	return a.roleContainer(seg, "", "roles")
}

func (a *adminRequest) roleContainer(seg []string, clientUUID, base string) error {
	r := a.r
	listPerm, managePerm := "any", "manage-realm"
	if clientUUID != "" {
		listPerm, managePerm = "view-clients", "manage-clients"
	}
	find := func(name string) *role {
		if clientUUID == "" {
			return r.realmRole(name)
		}
		return r.clientRole(clientUUID, name)
	}
	if len(seg) == 0 {
		switch a.method() {
		case http.MethodGet:
			if err := a.need(listPerm); err != nil {
				return err
			}
			out := []any{}
			search := strings.ToLower(a.query("search"))
			for _, ro := range r.sortedRoles(clientUUID) {
				if search == "" || strings.Contains(strings.ToLower(ro.name), search) {
					out = append(out, a.s.roleToRep(r, ro))
				}
			}
			return a.json(http.StatusOK, page(out, a.intQuery("first", 0), a.intQuery("max", -1)))
		case http.MethodPost:
			if err := a.need(managePerm); err != nil {
				return err
			}
			var rep roleRep
			if err := decodeBody(a.req, &rep); err != nil {
				return err
			}
			if strings.TrimSpace(rep.Name) == "" {
				return errorMessage(http.StatusBadRequest, "Role name is missing")
			}
			if find(rep.Name) != nil {
				return errorMessage(http.StatusConflict, "Role with name "+rep.Name+" already exists")
			}
			rep.ID = ""
			ro := a.s.addRole(r, rep, clientUUID)
			a.s.setComposites(r, ro, rep.Composites)
			return a.created(base + "/" + ro.name)
		}
		return errBadMethod
	}
	ro := find(seg[0])
	if ro == nil {
		return errorBody(http.StatusNotFound, "Could not find role")
	}
	if len(seg) == 2 && seg[1] == "users" && a.method() == http.MethodGet {
		if err := a.need("view-users"); err != nil {
			return err
		}
		out := []any{}
		for _, u := range r.sortedUsers() {
			if u.roles[ro.id] {
				out = append(out, a.s.userToRep(r, u, contextAdmin, true))
			}
		}
		return a.json(http.StatusOK, out)
	}
	if len(seg) == 2 && seg[1] == "composites" {
		switch a.method() {
		case http.MethodGet:
			return a.json(http.StatusOK, append(a.s.rolesToRep(r, ro.composites, ""), allClientRoles(a.s, r, ro.composites)...))
		case http.MethodPost, http.MethodDelete:
			if err := a.need(managePerm); err != nil {
				return err
			}
			var reps []roleRep
			if err := decodeBody(a.req, &reps); err != nil {
				return err
			}
			for _, rr := range reps {
				c := r.roles[rr.ID]
				if c == nil {
					return errorBody(http.StatusNotFound, "Could not find composite role")
				}
				if a.method() == http.MethodPost {
					ro.composites[c.id] = true
				} else {
					delete(ro.composites, c.id)
				}
			}
			return a.noContent()
		}
	}
	if len(seg) != 1 {
		return errNoResource
	}
	switch a.method() {
	case http.MethodGet:
		if err := a.need(listPerm); err != nil {
			return err
		}
		return a.json(http.StatusOK, a.s.roleToRep(r, ro))
	case http.MethodPut:
		if err := a.need(managePerm); err != nil {
			return err
		}
		var rep roleRep
		if err := decodeBody(a.req, &rep); err != nil {
			return err
		}
		if rep.Name != "" && rep.Name != ro.name {
			if find(rep.Name) != nil {
				return errorMessage(http.StatusConflict, "Role with name "+rep.Name+" already exists")
			}
			ro.name = rep.Name
		}
		ro.description = rep.Description
		if rep.Attributes != nil {
			ro.attributes = rep.Attributes
		}
		return a.noContent()
	case http.MethodDelete:
		if err := a.need(managePerm); err != nil {
			return err
		}
		if ro.id == r.defaultRole {
			return errorMessage(http.StatusBadRequest, "You cannot delete a default realm role")
		}
		delete(r.roles, ro.id)
		for _, u := range r.users {
			delete(u.roles, ro.id)
		}
		for _, other := range r.roles {
			delete(other.composites, ro.id)
		}
		return a.noContent()
	}
	return errBadMethod
}

func allClientRoles(s *Server, r *realm, ids map[string]bool) []any {
	var out []any
	for _, c := range r.sortedClients() {
		out = append(out, s.rolesToRep(r, ids, c.id)...)
	}
	return out
}
