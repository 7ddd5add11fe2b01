package server

import (
	"errors"
	"net/http"
	"unicode/utf8"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

// hostedRoutes mounts the admin API, the audit API and the hosted pages.
func (s *Server) hostedRoutes() {
	s.auditRoutes()
	if s.factors != nil {
		s.mux.HandleFunc("GET /v1/admin/users/{id}/factors", s.requireAdmin(s.handleAdminFactors))
		s.mux.HandleFunc("DELETE /v1/admin/users/{id}/factors/{factor}", s.requireAdmin(s.handleAdminReset))
		s.mux.HandleFunc("POST /v1/admin/users/{id}/unlock", s.requireAdmin(s.handleAdminUnlock))
		s.mux.HandleFunc("POST /v1/admin/users/{id}/reenrol", s.requireAdmin(s.handleAdminReenrol))
	}
	s.pageRoutes()
}

// errNotAdmin: a valid token without the admin role.
var errNotAdmin = &apiError{Status: http.StatusForbidden, Code: "access_denied",
	Description: "this endpoint needs the admin realm role"}

// requireAdmin verifies the Bearer token and requires the realm role named
// by admin.role (realm_access.roles of the verified token). Service
// accounts holding the role are admins too; the token's sub is the actor
// every admin action is audited under.
func (s *Server) requireAdmin(next http.HandlerFunc) http.HandlerFunc {
	return s.requireToken(func(claims *token.Claims) error {
		role := s.cfg.Admin.Role
		if role == "" || claims.Subject == "" || !claims.HasRealmRole(role) {
			return errNotAdmin
		}
		return nil
	}, next)
}

// adminMeta is the audit metadata of an admin action: the admin is the
// actor, so the Registry records admin.reset / admin.unlock.
func (s *Server) adminMeta(r *http.Request, details map[string]string) factors.Meta {
	c := claimsFrom(r.Context())
	return factors.Meta{Actor: c.Subject, SessionID: c.SessionID, IP: ClientIP(r.Context()), Purpose: "admin", Details: details}
}

// targetUser reads and checks the {id} path value (a Keycloak user id).
func targetUser(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > 255 || !utf8.ValidString(id) {
		return "", errBadRequest("user id is malformed")
	}
	for _, c := range id {
		if c < 0x21 || c == 0x7f {
			return "", errBadRequest("user id is malformed")
		}
	}
	return id, nil
}

type budgetJSON struct {
	Remaining int    `json:"remaining"`
	ResetAt   string `json:"reset_at"`
}

type adminFactorsJSON struct {
	UserID        string           `json:"user_id"`
	Factors       []factors.Status `json:"factors"`
	FailureBudget budgetJSON       `json:"failure_budget"`
}

func (s *Server) handleAdminFactors(w http.ResponseWriter, r *http.Request) {
	id, err := targetUser(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.factors.Status(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	remaining, resetAt, err := s.factors.FailureBudget(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, adminFactorsJSON{UserID: id, Factors: st,
		FailureBudget: budgetJSON{Remaining: remaining, ResetAt: resetAt.UTC().Format("2006-01-02T15:04:05Z07:00")}})
}

func (s *Server) handleAdminReset(w http.ResponseWriter, r *http.Request) {
	id, err := targetUser(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	name := r.PathValue("factor")
	if err := s.factors.Reset(r.Context(), name, id, s.adminMeta(r, nil)); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAdminUnlock(w http.ResponseWriter, r *http.Request) {
	id, err := targetUser(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.factors.Unlock(r.Context(), id, s.adminMeta(r, nil)); err != nil {
		s.writeError(w, r, err)
		return
	}
	remaining, _, err := s.factors.FailureBudget(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_id": id, "unlocked": true, "failure_budget_remaining": remaining})
}

// handleAdminReenrol resets every factor the user has (pending, active or
// exhausted), so the user must enrol again. Each reset is audited as
// admin.reset with reason "reenrol".
func (s *Server) handleAdminReenrol(w http.ResponseWriter, r *http.Request) {
	id, err := targetUser(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.factors.Status(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	reset := []string{}
	for _, f := range st {
		if f.State == factors.StateNone {
			continue
		}
		err := s.factors.Reset(r.Context(), f.Factor, id, s.adminMeta(r, map[string]string{"reason": "reenrol"}))
		if errors.Is(err, factors.ErrNotEnrolled) || errors.Is(err, factors.ErrNotSupported) {
			continue // removed meanwhile, or nothing to remove
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		reset = append(reset, f.Factor)
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_id": id, "reset": reset})
}
