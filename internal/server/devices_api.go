package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/devices"
)

// Trusted devices and security activity (docs/api.md).
//
// A user lists and revokes their own trusted devices with their access
// token; an admin lists and revokes any user's. The device token itself is
// shown once, by the login, MFA or step-up answer that issued it, and
// never again: the list shows ids and labels only.

func (s *Server) deviceRoutes() {
	if s.devices != nil {
		s.mux.HandleFunc("GET /v1/devices", s.requireUser(s.handleListDevices))
		s.mux.HandleFunc("DELETE /v1/devices/{device}", s.limitIP(s.requireUser(s.handleRevokeDevice)))
		s.mux.HandleFunc("GET /v1/admin/users/{id}/devices", s.requireAdmin(s.handleAdminDevices))
		s.mux.HandleFunc("DELETE /v1/admin/users/{id}/devices", s.requireAdmin(s.handleAdminRevokeDevices))
		s.mux.HandleFunc("DELETE /v1/admin/users/{id}/devices/{device}", s.requireAdmin(s.handleAdminRevokeDevice))
	}
	if s.notifier != nil {
		s.mux.HandleFunc("GET /v1/activity", s.requireUser(s.handleActivity))
	}
}

type devicesJSON struct {
	Devices []devices.Device `json:"devices"`
}

func (s *Server) handleListDevices(w http.ResponseWriter, r *http.Request) {
	list, err := s.devices.List(r.Context(), claimsFrom(r.Context()).Subject)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, devicesJSON{Devices: list})
}

// deviceID reads and checks the {device} path value.
func deviceID(r *http.Request) (string, error) {
	id := r.PathValue("device")
	if len(id) == 0 || len(id) > 64 {
		return "", errBadRequest("device id is malformed")
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", errBadRequest("device id is malformed")
		}
	}
	return id, nil
}

func (s *Server) handleRevokeDevice(w http.ResponseWriter, r *http.Request) {
	c := claimsFrom(r.Context())
	id, err := deviceID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	meta := devices.Meta{SessionID: c.SessionID, IP: ClientIP(r.Context())}
	if err := s.devices.Revoke(r.Context(), c.Subject, id, devices.RevokedByUser, meta); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAdminDevices(w http.ResponseWriter, r *http.Request) {
	user, err := targetUser(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.devices.List(r.Context(), user)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "devices": list})
}

func (s *Server) adminDeviceMeta(r *http.Request) devices.Meta {
	c := claimsFrom(r.Context())
	return devices.Meta{Actor: c.Subject, SessionID: c.SessionID, IP: ClientIP(r.Context())}
}

func (s *Server) handleAdminRevokeDevices(w http.ResponseWriter, r *http.Request) {
	user, err := targetUser(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	n, err := s.devices.RevokeAll(r.Context(), user, devices.RevokedByAdmin, s.adminDeviceMeta(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "revoked": n})
}

func (s *Server) handleAdminRevokeDevice(w http.ResponseWriter, r *http.Request) {
	user, err := targetUser(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := deviceID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.devices.Revoke(r.Context(), user, id, devices.RevokedByAdmin, s.adminDeviceMeta(r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// handleActivity is GET /v1/activity?limit=: the caller's security events,
// newest first.
func (s *Server) handleActivity(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			s.writeError(w, r, errBadRequest("limit must be 1..500"))
			return
		}
		limit = n
	}
	act, err := s.notifier.Activity(r.Context(), claimsFrom(r.Context()).Subject, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"activity": act})
}

// deviceGrantJSON is the credential issued after a factor, shown once.
type deviceGrantJSON struct {
	DeviceToken string    `json:"device_token"`
	DeviceID    string    `json:"device_id"`
	Label       string    `json:"label"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func toDeviceGrant(iss *devices.Issued) *deviceGrantJSON {
	if iss == nil {
		return nil
	}
	return &deviceGrantJSON{DeviceToken: iss.Token, DeviceID: iss.Device.ID, Label: iss.Device.Label, ExpiresAt: iss.Device.ExpiresAt.UTC()}
}
