package keycloaktest

import (
	"net/http"
	"strings"
)

// Account REST API GET|POST /realms/{realm}/account
// (services/src/main/java/org/keycloak/services/resources/account/AccountRestService.java):
// the user's own token; GET needs the account role view-profile (or
// manage-account), POST manage-account. Attributes follow the user profile
// in the "user" context: an attribute the user may not edit, sent with a
// changed value, is 400 error-user-attribute-read-only.

func (s *Server) accountCaller(w http.ResponseWriter, req *http.Request, r *realm, roles ...string) *user {
	_, u, _, _, err := s.validateAccessToken(r, bearer(req))
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "HTTP 401 Unauthorized"})
		return nil
	}
	acc := r.clientByClientID(accountClientID)
	eff := r.effectiveRoles(u)
	for _, name := range roles {
		if acc != nil {
			if ro := r.clientRole(acc.id, name); ro != nil && eff[ro.id] {
				return u
			}
		}
	}
	writeJSON(w, http.StatusForbidden, map[string]string{"error": "HTTP 403 Forbidden"})
	return nil
}

func (s *Server) accountRep(r *realm, u *user) map[string]any {
	out := map[string]any{"id": u.id, "username": u.username, "emailVerified": u.emailVerified}
	if u.firstName != "" {
		out["firstName"] = u.firstName
	}
	if u.lastName != "" {
		out["lastName"] = u.lastName
	}
	if u.email != "" {
		out["email"] = u.email
	}
	if attrs := r.profile.visibleAttributes(u, contextUser); len(attrs) > 0 {
		out["attributes"] = attrs
	}
	a := &adminRequest{r: r}
	out["userProfileMetadata"] = a.profileMetadata(contextUser)
	return out
}

func (s *Server) handleAccountGet(w http.ResponseWriter, req *http.Request, r *realm) {
	if strings.Trim(strings.TrimPrefix(req.URL.Path, "/realms/"+r.name+"/account"), "/") != "" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Unable to find matching target resource method"})
		return
	}
	u := s.accountCaller(w, req, r, "view-profile", "manage-account")
	if u == nil {
		return
	}
	writeJSON(w, http.StatusOK, s.accountRep(r, u))
}

func (s *Server) handleAccountPost(w http.ResponseWriter, req *http.Request, r *realm) {
	if strings.Trim(strings.TrimPrefix(req.URL.Path, "/realms/"+r.name+"/account"), "/") != "" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Unable to find matching target resource method"})
		return
	}
	u := s.accountCaller(w, req, r, "manage-account")
	if u == nil {
		return
	}
	var rep userRep
	if err := decodeBody(req, &rep); err != nil {
		s.writeAPIError(w, err)
		return
	}
	if rep.Username != nil && strings.ToLower(*rep.Username) != u.username && !r.editUsernameAllowed {
		s.writeAPIError(w, readOnlyError("username"))
		return
	}
	if rep.Email != nil && *rep.Email != "" && !r.duplicateEmailsAllowed {
		if other := r.userByEmail(*rep.Email); other != nil && other != u {
			s.writeAPIError(w, errorMessage(http.StatusConflict, "emailExistsMessage"))
			return
		}
	}
	// The account console always sends the attributes it shows, so the
	// update replaces the user-editable ones (AccountRestService.updateAccount).
	in := rep.Attributes
	if in == nil {
		in = map[string][]string{}
	}
	if err := s.applyAttributes(r, u, in, rep.Attributes != nil, contextUser); err != nil {
		s.writeAPIError(w, err)
		return
	}
	if rep.FirstName != nil {
		u.firstName = *rep.FirstName
	}
	if rep.LastName != nil {
		u.lastName = *rep.LastName
	}
	if rep.Email != nil && !strings.EqualFold(*rep.Email, u.email) {
		u.email = strings.ToLower(*rep.Email)
		u.emailVerified = false
	}
	w.WriteHeader(http.StatusNoContent)
}
