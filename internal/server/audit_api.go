package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// auditExportPage is how many events the export reads per store call.
const auditExportPage = 1000

// auditRoutes mounts the read-only audit API. The trail has no update and
// no delete here: every other method on these paths is 405.
func (s *Server) auditRoutes() {
	s.mux.HandleFunc("GET /v1/admin/audit", s.requireAdmin(s.handleAuditList))
	s.mux.HandleFunc("GET /v1/admin/audit/export", s.requireAdmin(s.handleAuditExport))
	refuse := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		s.writeError(w, r, &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Description: "the audit trail is append-only: it can be read, never changed or deleted"})
	}
	for _, p := range []string{"/v1/admin/audit", "/v1/admin/audit/", "/v1/admin/audit/export"} {
		s.mux.HandleFunc(p, refuse)
	}
}

// auditEventJSON is one event as the API shows it.
type auditEventJSON struct {
	Seq       int64             `json:"seq"`
	Time      time.Time         `json:"time"`
	Type      string            `json:"type"`
	Actor     string            `json:"actor,omitempty"`
	UserID    string            `json:"user_id,omitempty"`
	Factor    string            `json:"factor,omitempty"`
	SessionID string            `json:"session_id,omitempty"`
	IP        string            `json:"ip,omitempty"`
	Outcome   string            `json:"outcome,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
}

func toAuditJSON(e store.AuditEvent) auditEventJSON {
	return auditEventJSON{Seq: e.Seq, Time: e.Time.UTC(), Type: e.Type, Actor: e.Actor, UserID: e.UserID,
		Factor: e.Factor, SessionID: e.SessionID, IP: e.IP, Outcome: e.Outcome, Details: e.Details}
}

// auditQuery reads ?user=&type=&from=&to=&after=&limit=. type may repeat
// or be comma separated; from and to are RFC 3339 (from inclusive, to
// exclusive); after is the seq to page from; limit is 1..1000 (default 100).
func auditQuery(r *http.Request) (store.AuditQuery, error) {
	v := r.URL.Query()
	q := store.AuditQuery{UserID: v.Get("user")}
	if len(q.UserID) > 255 {
		return q, errBadRequest("user is too long")
	}
	for _, t := range v["type"] {
		for _, x := range strings.Split(t, ",") {
			if x = strings.TrimSpace(x); x != "" {
				q.Types = append(q.Types, x)
			}
		}
	}
	if len(q.Types) > 50 {
		return q, errBadRequest("too many types")
	}
	var err error
	parseTime := func(name string) time.Time {
		raw := v.Get(name)
		if raw == "" || err != nil {
			return time.Time{}
		}
		t, perr := time.Parse(time.RFC3339Nano, raw)
		if perr != nil {
			err = errBadRequest("%s must be an RFC 3339 time", name)
		}
		return t
	}
	q.From, q.To = parseTime("from"), parseTime("to")
	if err != nil {
		return q, err
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return q, errBadRequest("from must be before to")
	}
	if a := v.Get("after"); a != "" {
		n, perr := strconv.ParseInt(a, 10, 64)
		if perr != nil || n < 0 {
			return q, errBadRequest("after must be a non-negative sequence number")
		}
		q.AfterSeq = n
	}
	q.Limit = 100
	if l := v.Get("limit"); l != "" {
		n, perr := strconv.Atoi(l)
		if perr != nil || n < 1 || n > 1000 {
			return q, errBadRequest("limit must be between 1 and 1000")
		}
		q.Limit = n
	}
	return q, nil
}

type auditPageJSON struct {
	Events []auditEventJSON `json:"events"`
	// NextAfter is the after= of the next page; absent on the last page.
	NextAfter *int64 `json:"next_after,omitempty"`
}

func (s *Server) handleAuditList(w http.ResponseWriter, r *http.Request) {
	q, err := auditQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	evs, err := s.store.ListAudit(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := auditPageJSON{Events: make([]auditEventJSON, 0, len(evs))}
	for _, e := range evs {
		out.Events = append(out.Events, toAuditJSON(e))
	}
	if len(evs) == q.Limit && len(evs) > 0 {
		next := evs[len(evs)-1].Seq
		out.NextAfter = &next
	}
	writeJSON(w, http.StatusOK, out)
}

// handleAuditExport streams every matching event as JSON lines, reading
// the store page by page so memory stays flat however long the trail.
// limit, if given, caps the total. A failure after the first line can
// only cut the stream short: the last line is then {"error":...}.
func (s *Server) handleAuditExport(w http.ResponseWriter, r *http.Request) {
	q, err := auditQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	total := -1
	if r.URL.Query().Get("limit") != "" {
		total = q.Limit
	}
	q.Limit = auditExportPage
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	started := false
	sent := 0
	for {
		if total >= 0 && total-sent < q.Limit {
			q.Limit = total - sent
		}
		if q.Limit == 0 {
			break
		}
		evs, err := s.store.ListAudit(r.Context(), q)
		if err != nil {
			if !started {
				s.writeError(w, r, err)
				return
			}
			s.log.ErrorContext(r.Context(), "audit export cut short", "err", err, "sent", sent)
			_ = enc.Encode(map[string]string{"error": "temporarily_unavailable", "error_description": "the export was cut short; resume with after=" + strconv.FormatInt(q.AfterSeq, 10)})
			return
		}
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Disposition", `attachment; filename="stepup-audit.ndjson"`)
			w.WriteHeader(http.StatusOK)
			started = true
		}
		for _, e := range evs {
			if err := enc.Encode(toAuditJSON(e)); err != nil {
				return // the client went away
			}
		}
		sent += len(evs)
		_ = rc.Flush()
		if len(evs) < q.Limit {
			break
		}
		q.AfterSeq = evs[len(evs)-1].Seq
	}
	if !started {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	}
}
